import DuetCore
public import DuetTraining
import Foundation

/// Hyperparameter search for ALS on a validation part carved from a split's train part; the test
/// part is touched only once, at the end, to report the chosen and the default configurations.
public struct TuneReport: Codable, Sendable {
    public struct Trial: Codable, Sendable {
        public var configuration: ALSConfiguration
        public var validationNDCG: Double
    }
    public var split: String
    public var trials: [Trial]
    public var best: ALSConfiguration
    public var bestValidationNDCG: Double
    public var defaultTestNDCG: Double
    public var bestTestNDCG: Double
    public var k: Int
}

public enum SearchStrategy: String, Codable, Sendable, CaseIterable { case random, grid }

extension Lab {
    public func tune(split splitID: String, trials: Int, strategy: SearchStrategy = .random, seed: UInt64 = 42, k: Int = 10,
                     threads: Int = 1, progress: (@Sendable (Int, Int, Double) -> Void)? = nil) throws -> TuneReport {
        guard trials >= 1 else { throw DuetError.invalidValue(field: "trials", reason: "must be ≥ 1") }
        let (_, snapshot, split) = try loadSplit(splitID)
        let carved = try split.withValidation(fraction: 0.2, seed: seed ^ 0x5EED, snapshot: snapshot)
        let fit = carved.matrix(.train, of: snapshot)
        let validation = carved.matrix(.validation, of: snapshot)
        var base = ALSConfiguration()
        base.threads = threads
        let candidates = Self.configurations(base: base, count: trials, strategy: strategy, seed: seed)
        var results: [TuneReport.Trial] = []
        for (index, configuration) in candidates.enumerated() {
            let model = try ALS.train(fit, configuration: configuration)
            let ndcg = Evaluator.evaluate(model, train: fit, test: validation, k: k, threads: threads).0.ndcg
            results.append(.init(configuration: configuration, validationNDCG: ndcg))
            progress?(index + 1, candidates.count, ndcg)
        }
        let best = results.max { $0.validationNDCG < $1.validationNDCG }!
        let train = split.matrix(.train, of: snapshot), test = split.matrix(.test, of: snapshot)
        func testNDCG(_ configuration: ALSConfiguration) throws -> Double {
            Evaluator.evaluate(try ALS.train(train, configuration: configuration), train: train, test: test, k: k, threads: threads).0.ndcg
        }
        return TuneReport(split: splitID, trials: results, best: best.configuration, bestValidationNDCG: best.validationNDCG,
                          defaultTestNDCG: try testNDCG(base), bestTestNDCG: try testNDCG(best.configuration), k: k)
    }

    static func configurations(base: ALSConfiguration, count: Int, strategy: SearchStrategy, seed: UInt64) -> [ALSConfiguration] {
        let factors = [32, 64, 128], regularization: [Float] = [0.1, 1, 10, 50], alpha: [Float] = [1, 2, 5, 10, 20]
        let weighting: [Weighting] = [.log1p, .bm25]
        switch strategy {
        case .grid:
            var grid: [ALSConfiguration] = []
            for f in factors { for r in regularization { for a in alpha { for w in weighting {
                var configuration = base
                configuration.factors = f
                configuration.regularization = r
                configuration.alpha = a
                configuration.weighting = w
                grid.append(configuration)
            } } } }
            // An even spread over the grid when asked for fewer points than it has.
            let step = max(1, grid.count / count)
            return Array(stride(from: 0, to: grid.count, by: step).map { grid[$0] }.prefix(count))
        case .random:
            var rng = SplitMix64(seed: seed, 51)
            return (0..<count).map { _ in
                var configuration = base
                configuration.factors = factors[rng.below(factors.count)]
                configuration.regularization = Float(Foundation.exp(Foundation.log(0.05) + rng.uniform() * (Foundation.log(50) - Foundation.log(0.05))))
                configuration.alpha = Float(Foundation.exp(Foundation.log(0.5) + rng.uniform() * (Foundation.log(40) - Foundation.log(0.5))))
                configuration.iterations = [10, 15, 20][rng.below(3)]
                configuration.weighting = weighting[rng.below(weighting.count)]
                return configuration
            }
        }
    }
}
