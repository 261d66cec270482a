public import DuetCore
import DuetKernels
import Foundation

public struct BPRConfiguration: Sendable, Codable, Hashable {
    public var factors = 64
    public var learningRate: Float = 0.05
    public var regularization: Float = 0.01
    public var iterations = 100
    public var seed: UInt64 = 42
    public var threads = 1

    public init() {}

    public func validate() throws(DuetError) {
        guard (1...1_024).contains(factors) else { throw .invalidValue(field: "factors", reason: "\(factors) must be in 1…1024") }
        guard learningRate > 0, learningRate.isFinite else { throw .invalidValue(field: "learning-rate", reason: "must be > 0") }
        guard regularization >= 0 else { throw .invalidValue(field: "regularization", reason: "must be ≥ 0") }
        guard iterations >= 1 else { throw .invalidValue(field: "iterations", reason: "must be ≥ 1") }
        guard threads >= 1 else { throw .invalidValue(field: "threads", reason: "must be ≥ 1") }
    }

    public var hyperparameters: [String: ParameterValue] {
        ["factors": .int(factors), "learningRate": .double(Double(learningRate)), "regularization": .double(Double(regularization)),
         "iterations": .int(iterations), "seed": .int(Int(seed))]
    }
}

/// Bayesian Personalized Ranking (Rendle et al., UAI 2009) by stochastic gradient descent: each
/// step samples a user, one of their items i and an item j they have not touched, and pushes
/// x_u·y_i above x_u·y_j. Threads update shared factors without locks (Hogwild!, Niu et al. 2011);
/// with one thread the run is deterministic for a seed.
public enum BPR {
    public static func train(_ matrix: InteractionMatrix, configuration: BPRConfiguration,
                             progress: TrainingProgress? = nil) throws -> FactorModel {
        try configuration.validate()
        let d = configuration.factors
        var rng = SplitMix64(seed: configuration.seed, 11)
        let scale = 1 / Float(d).squareRoot()
        var userFactors = (0..<(matrix.rows * d)).map { _ in Float(rng.gaussian()) * 0.1 * scale }
        var itemFactors = (0..<(matrix.columns * d)).map { _ in Float(rng.gaussian()) * 0.1 * scale }
        let activeUsers = (0..<matrix.rows).filter { !matrix.row($0).isEmpty && matrix.row($0).count < matrix.columns }
        guard !activeUsers.isEmpty else { throw DuetError.emptyInput(path: "training data", reason: "no user has both seen and unseen items") }
        let samplesPerIteration = matrix.nonZeroCount
        let threads = configuration.threads
        for iteration in 1...configuration.iterations {
            userFactors.withUnsafeMutableBufferPointer { users in
                itemFactors.withUnsafeMutableBufferPointer { items in
                    let xs = UnsafeMutableSendablePointer(users.baseAddress!)
                    let ys = UnsafeMutableSendablePointer(items.baseAddress!)
                    Parallel.forEach(threads, threads: threads) { worker in
                        var random = SplitMix64(seed: configuration.seed, UInt64(iteration), UInt64(worker))
                        let share = samplesPerIteration / threads + (worker < samplesPerIteration % threads ? 1 : 0)
                        for _ in 0..<share {
                            let user = activeUsers[random.below(activeUsers.count)]
                            let row = matrix.row(user)
                            let positive = Int(matrix.indices[row.lowerBound + random.below(row.count)])
                            var negative = random.below(matrix.columns)
                            var tries = 0
                            while contains(matrix, row: row, negative), tries < 16 {
                                negative = random.below(matrix.columns)
                                tries += 1
                            }
                            if tries == 16 { continue }
                            step(xs.pointer + user * d, ys.pointer + positive * d, ys.pointer + negative * d, d,
                                 configuration.learningRate, configuration.regularization)
                        }
                    }
                }
            }
            progress?(iteration, configuration.iterations, nil)
        }
        return FactorModel(kind: "bpr", dimension: d, userCount: matrix.rows, itemCount: matrix.columns, userFactors: userFactors,
                           itemFactors: itemFactors, itemPopularity: FactorModel.popularity(of: matrix),
                           hyperparameters: configuration.hyperparameters)
    }

    static func contains(_ matrix: InteractionMatrix, row: Range<Int>, _ item: Int) -> Bool {
        var low = row.lowerBound, high = row.upperBound
        let target = UInt32(item)
        while low < high {
            let mid = (low + high) / 2
            if matrix.indices[mid] < target { low = mid + 1 } else { high = mid }
        }
        return low < row.upperBound && matrix.indices[low] == target
    }

    @inline(__always)
    static func step(_ x: UnsafeMutablePointer<Float>, _ yi: UnsafeMutablePointer<Float>, _ yj: UnsafeMutablePointer<Float>,
                     _ d: Int, _ rate: Float, _ reg: Float) {
        var difference: Float = 0
        for k in 0..<d { difference += x[k] * (yi[k] - yj[k]) }
        let z = 1 / (1 + Foundation.exp(difference))
        for k in 0..<d {
            let xu = x[k], a = yi[k], b = yj[k]
            x[k] += rate * (z * (a - b) - reg * xu)
            yi[k] += rate * (z * xu - reg * a)
            yj[k] += rate * (-z * xu - reg * b)
        }
    }
}
