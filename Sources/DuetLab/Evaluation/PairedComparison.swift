import DuetCore
import Foundation

/// A metric's mean paired difference (candidate − baseline) over the same users, with a percentile
/// bootstrap confidence interval (Efron & Tibshirani, 1993): users are resampled with replacement.
public struct PairedDifference: Codable, Sendable, Hashable {
    public var metric: String
    public var baseline: Double
    public var candidate: Double
    public var difference: Double
    public var lower: Double
    public var upper: Double
    public var confidence: Double
    public var users: Int

    /// The interval excludes 0.
    public var isSignificant: Bool { lower > 0 || upper < 0 }
}

public enum PairedBootstrap {
    /// `baseline[i]` and `candidate[i]` belong to the same user. Deterministic for a seed.
    public static func compare(metric: String, baseline: [Double], candidate: [Double], resamples: Int = 1_000,
                               confidence: Double = 0.95, seed: UInt64 = 42) throws -> PairedDifference {
        guard baseline.count == candidate.count else {
            throw DuetError.invalidValue(field: "paired comparison", reason: "\(baseline.count) baseline users vs \(candidate.count) candidate users")
        }
        guard !baseline.isEmpty else { throw DuetError.emptyInput(path: metric, reason: "no users to compare") }
        guard resamples >= 100 else { throw DuetError.invalidValue(field: "resamples", reason: "\(resamples) is too few; use at least 100") }
        let differences = zip(candidate, baseline).map { $0 - $1 }
        let n = differences.count
        var rng = SplitMix64(seed: seed, 21)
        var means = [Double](repeating: 0, count: resamples)
        for resample in 0..<resamples {
            var total = 0.0
            for _ in 0..<n { total += differences[rng.below(n)] }
            means[resample] = total / Double(n)
        }
        means.sort()
        let tail = (1 - confidence) / 2
        func quantile(_ q: Double) -> Double {
            let position = q * Double(resamples - 1)
            let low = Int(position.rounded(.down)), high = min(low + 1, resamples - 1)
            return means[low] + (means[high] - means[low]) * (position - Double(low))
        }
        let mean = { (values: [Double]) in values.reduce(0, +) / Double(values.count) }
        return PairedDifference(metric: metric, baseline: mean(baseline), candidate: mean(candidate), difference: mean(differences),
                                lower: quantile(tail), upper: quantile(1 - tail), confidence: confidence, users: n)
    }
}
