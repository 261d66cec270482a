import Foundation

/// Sufficient statistics of a per-user metric in one arm. Variances are sample variances (n − 1).
public struct MeanStatistics: Codable, Sendable, Hashable {
    public var n: Int
    public var sum: Double
    public var sumSquares: Double

    public init(n: Int, sum: Double, sumSquares: Double) {
        self.n = n
        self.sum = sum
        self.sumSquares = sumSquares
    }

    public init(values: [Double]) {
        self.init(n: values.count, sum: values.reduce(0, +), sumSquares: values.reduce(0) { $0 + $1 * $1 })
    }

    enum CodingKeys: String, CodingKey { case n, sum, sumSquares = "sum_squares" }

    public var mean: Double { n > 0 ? sum / Double(n) : 0 }
    public var variance: Double { n > 1 ? max(0, (sumSquares - sum * sum / Double(n)) / Double(n - 1)) : 0 }
}

/// A ratio metric per arm (Σm / Σd, e.g. plays / exposures) from per-user numerators and denominators.
public struct RatioStatistics: Codable, Sendable, Hashable {
    public var n: Int
    public var sumM: Double, sumM2: Double, sumD: Double, sumD2: Double, sumMD: Double

    public init(n: Int, sumM: Double, sumM2: Double, sumD: Double, sumD2: Double, sumMD: Double) {
        self.n = n
        self.sumM = sumM
        self.sumM2 = sumM2
        self.sumD = sumD
        self.sumD2 = sumD2
        self.sumMD = sumMD
    }

    enum CodingKeys: String, CodingKey {
        case n, sumM = "sum_m", sumM2 = "sum_m2", sumD = "sum_d", sumD2 = "sum_d2", sumMD = "sum_md"
    }

    public var ratio: Double { sumD != 0 ? sumM / sumD : 0 }
}

/// A metric Y with its pre-period covariate X, per arm, for CUPED.
public struct CovariateStatistics: Codable, Sendable, Hashable {
    public var n: Int
    public var sumY: Double, sumY2: Double, sumX: Double, sumX2: Double, sumXY: Double

    public init(n: Int, sumY: Double, sumY2: Double, sumX: Double, sumX2: Double, sumXY: Double) {
        self.n = n
        self.sumY = sumY
        self.sumY2 = sumY2
        self.sumX = sumX
        self.sumX2 = sumX2
        self.sumXY = sumXY
    }

    enum CodingKeys: String, CodingKey {
        case n, sumY = "sum_y", sumY2 = "sum_y2", sumX = "sum_x", sumX2 = "sum_x2", sumXY = "sum_xy"
    }
}

/// An effect with its interval: the shape every two-sided test returns.
public struct EffectEstimate: Codable, Sendable, Hashable {
    public var estimate: Double
    public var standardError: Double
    public var pValue: Double
    public var lower: Double
    public var upper: Double
    /// Welch–Satterthwaite degrees of freedom, for t-based estimates.
    public var degreesOfFreedom: Double?

    public var isSignificantlyPositive: Bool { lower > 0 }
    public var isSignificantlyNegative: Bool { upper < 0 }
}

public struct SampleRatioCheck: Codable, Sendable, Hashable {
    public var chiSquared: Double
    public var pValue: Double
    public var detected: Bool
    public var counts: [Int]
    public var expectedShares: [Double]
    /// "chi-squared", "exact binomial" (two arms, an expected count under 5), or "too small" (more
    /// arms with an expected count under 5: no test is trustworthy, and shipping waits).
    public var method: String?
    public var tooSmallToJudge: Bool?
}

public struct SequentialEstimate: Codable, Sendable, Hashable {
    public var difference: Double
    public var rho: Double
    public var halfWidth: Double
    public var lower: Double
    public var upper: Double
    public var pValue: Double
}

public struct NonInferiorityResult: Codable, Sendable, Hashable {
    public var difference: Double
    /// The worst difference still tolerated: −margin·control mean (or +, when lower is better).
    public var bound: Double
    public var pValue: Double
    /// One-sided (1 − α) bound on the difference: lower when higher is better, upper otherwise.
    public var confidenceBound: Double
    public var nonInferior: Bool
    /// True when the bound comes from the confidence sequence (sequential mode).
    public var alwaysValid: Bool?
}

/// How p-values across success metrics × arms are adjusted: Holm controls the chance of any false
/// "better" (the default, for shipping decisions); Benjamini–Hochberg the share of false ones.
public enum MultipleTestingCorrection: String, Codable, Sendable, CaseIterable {
    case holm
    case benjaminiHochberg = "bh"

    public var label: String { self == .holm ? "Holm" : "Benjamini–Hochberg" }
}

/// The analysis engine: pure functions of per-arm sufficient statistics, as GrowthBook's gbstats
/// works, so a warehouse's aggregates can be checked by hand (`duet lab stats`). Every definition
/// is pinned by `../shared/conformance/stats-cases.json`.
public enum ABStatistics {
    /// Welch's t-test on the difference of means (treatment − control), Welch–Satterthwaite df.
    public static func welch(control: MeanStatistics, treatment: MeanStatistics, alpha: Double = 0.05) -> EffectEstimate {
        let a = control.variance / Double(control.n), b = treatment.variance / Double(treatment.n)
        let se = (a + b).squareRoot()
        let difference = treatment.mean - control.mean
        guard se > 0, se.isFinite else {
            // No variance in either arm: the difference is exact (and usually zero).
            return EffectEstimate(estimate: difference, standardError: 0, pValue: difference == 0 ? 1 : 0, lower: difference,
                                  upper: difference, degreesOfFreedom: Double(control.n + treatment.n - 2))
        }
        let df = (a + b) * (a + b) / (a * a / Double(control.n - 1) + b * b / Double(treatment.n - 1))
        let t = se > 0 ? difference / se : 0
        let p = min(1, 2 * Distributions.studentTSurvival(abs(t), df: df))
        let quantile = Distributions.studentTQuantile(1 - alpha / 2, df: df)
        return EffectEstimate(estimate: difference, standardError: se, pValue: p, lower: difference - quantile * se,
                              upper: difference + quantile * se, degreesOfFreedom: df)
    }

    /// Relative lift (μt/μc − 1) with a delta-method standard error, normal intervals:
    /// Var ≈ σt²/(nt μc²) + μt² σc²/(nc μc⁴).
    public static func relativeLift(control: MeanStatistics, treatment: MeanStatistics, alpha: Double = 0.05) -> EffectEstimate {
        let mc = control.mean, mt = treatment.mean
        let lift = mt / mc - 1
        let variance = treatment.variance / (Double(treatment.n) * mc * mc) + mt * mt * control.variance / (Double(control.n) * pow(mc, 4))
        return normalEstimate(lift, se: variance.squareRoot(), alpha: alpha)
    }

    /// The sample-ratio check, always made: Pearson's χ² goodness of fit of arm counts to the
    /// planned weights when every expected count is at least 5. Below that the sample is too small to
    /// judge (and shipping waits); with two arms the exact two-sided binomial test still flags a
    /// mismatch it can see. A mismatch is flagged when p < `threshold` (0.001).
    public static func sampleRatioMismatch(counts: [Int], weights: [Double], threshold: Double = 0.001) -> SampleRatioCheck {
        let total = Double(counts.reduce(0, +))
        let weightSum = weights.reduce(0, +)
        let shares = weights.map { $0 / weightSum }
        var chi2 = 0.0
        for (count, share) in zip(counts, shares) {
            let expected = total * share
            if expected > 0 { chi2 += (Double(count) - expected) * (Double(count) - expected) / expected }
        }
        let smallestExpected = shares.map { total * $0 }.min() ?? 0
        if total > 0, smallestExpected >= 5 {
            let p = Distributions.chiSquaredSurvival(chi2, df: Double(counts.count - 1))
            return SampleRatioCheck(chiSquared: chi2, pValue: p, detected: p < threshold, counts: counts, expectedShares: shares,
                                    method: "chi-squared", tooSmallToJudge: false)
        }
        // Small counts: a mismatch the exact test finds is still reported, but a sample this small
        // cannot show the ratio is right, so it is too small to judge and shipping waits.
        if total > 0, counts.count == 2 {
            let p = exactBinomialTwoSided(successes: counts[1], trials: counts[0] + counts[1], probability: shares[1])
            return SampleRatioCheck(chiSquared: chi2, pValue: p, detected: p < threshold, counts: counts, expectedShares: shares,
                                    method: "exact binomial", tooSmallToJudge: true)
        }
        return SampleRatioCheck(chiSquared: chi2, pValue: 1, detected: false, counts: counts, expectedShares: shares,
                                method: "too small", tooSmallToJudge: true)
    }

    /// P(X as or less likely than `successes`) for X ~ Binomial(trials, probability), as scipy's binomtest.
    static func exactBinomialTwoSided(successes: Int, trials: Int, probability: Double) -> Double {
        guard probability > 0, probability < 1 else { return successes == Int((Double(trials) * probability).rounded()) ? 1 : 0 }
        func logPMF(_ k: Int) -> Double {
            lgamma(Double(trials + 1)) - lgamma(Double(k + 1)) - lgamma(Double(trials - k + 1))
                + Double(k) * log(probability) + Double(trials - k) * log1p(-probability)
        }
        let observed = logPMF(successes)
        // The relative tolerance scipy uses, so ties count as "as likely".
        let cutoff = observed + log1p(1e-7)
        var p = 0.0
        for k in 0...trials where logPMF(k) <= cutoff { p += exp(logPMF(k)) }
        return min(1, p)
    }

    /// CUPED (Deng et al., WSDM 2013): θ = cov(Y, X)/var(X) pooled over both arms; each arm's
    /// adjusted mean ȳ − θx̄ has variance (s²y + θ²s²x − 2θ·sxy)/n; normal intervals.
    public static func cuped(control: CovariateStatistics, treatment: CovariateStatistics, alpha: Double = 0.05)
        -> (theta: Double, effect: EffectEstimate) {
        let n = Double(control.n + treatment.n)
        let sy = control.sumY + treatment.sumY, sx = control.sumX + treatment.sumX
        let sxy = control.sumXY + treatment.sumXY, sx2 = control.sumX2 + treatment.sumX2
        let covariance = (sxy - sx * sy / n) / (n - 1)
        let varianceX = (sx2 - sx * sx / n) / (n - 1)
        let theta = varianceX > 0 ? covariance / varianceX : 0
        func arm(_ s: CovariateStatistics) -> (mean: Double, variance: Double) {
            let k = Double(s.n)
            let vy = (s.sumY2 - s.sumY * s.sumY / k) / (k - 1)
            let vx = (s.sumX2 - s.sumX * s.sumX / k) / (k - 1)
            let cxy = (s.sumXY - s.sumX * s.sumY / k) / (k - 1)
            return (s.sumY / k - theta * s.sumX / k, (vy + theta * theta * vx - 2 * theta * cxy) / k)
        }
        let c = arm(control), t = arm(treatment)
        return (theta, normalEstimate(t.mean - c.mean, se: (c.variance + t.variance).squareRoot(), alpha: alpha))
    }

    /// Difference of ratio metrics by the delta method: Var(R) ≈ (s²m − 2R·smd + R²s²d)/(n·d̄²).
    public static func ratio(control: RatioStatistics, treatment: RatioStatistics, alpha: Double = 0.05) -> EffectEstimate {
        normalEstimate(treatment.ratio - control.ratio, se: (ratioVariance(control) + ratioVariance(treatment)).squareRoot(), alpha: alpha)
    }

    /// The delta-method variance of one arm's ratio estimate; infinite when no user has a denominator.
    public static func ratioVariance(_ s: RatioStatistics) -> Double {
        let k = Double(s.n)
        let r = s.ratio
        let meanD = s.sumD / k
        guard meanD != 0, k > 1 else { return .infinity }
        let vm = (s.sumM2 - s.sumM * s.sumM / k) / (k - 1)
        let vd = (s.sumD2 - s.sumD * s.sumD / k) / (k - 1)
        let cmd = (s.sumMD - s.sumM * s.sumD / k) / (k - 1)
        return max(0, (vm - 2 * r * cmd + r * r * vd) / (k * meanD * meanD))
    }

    /// An always-valid confidence sequence (Waudby-Smith et al., "Time-uniform central limit theory
    /// and asymptotic confidence sequences", 2023, eq. 9) with ρ tuned for N* units, as GrowthBook's
    /// sequential test: halfwidth = σ̂·√(2(Nρ²+1)/(N²ρ²) · log(√(Nρ²+1)/α)), N units in both arms,
    /// σ̂² = N·Var(difference); p = min(1, 1/E) for the matching mixture e-value.
    public static func sequential(control: MeanStatistics, treatment: MeanStatistics, alpha: Double = 0.05,
                                  tuning: Int = 5_000) -> SequentialEstimate {
        sequential(difference: treatment.mean - control.mean,
                   varianceOfDifference: control.variance / Double(control.n) + treatment.variance / Double(treatment.n),
                   units: control.n + treatment.n, alpha: alpha, tuning: tuning)
    }

    /// The same confidence sequence for a ratio metric, with the delta-method variance of each arm's ratio.
    public static func sequential(control: RatioStatistics, treatment: RatioStatistics, alpha: Double = 0.05,
                                  tuning: Int = 5_000) -> SequentialEstimate {
        sequential(difference: treatment.ratio - control.ratio, varianceOfDifference: ratioVariance(control) + ratioVariance(treatment),
                   units: control.n + treatment.n, alpha: alpha, tuning: tuning)
    }

    /// The confidence sequence for any asymptotically normal difference.
    public static func sequential(difference: Double, varianceOfDifference: Double, units: Int, alpha: Double, tuning: Int) -> SequentialEstimate {
        let n = Double(units)
        let rho = ((-2 * log(alpha) + log(-2 * log(alpha) + 1)) / Double(tuning)).squareRoot()
        let s2 = varianceOfDifference * n
        let nr2 = n * rho * rho
        guard s2 > 0, s2.isFinite else {
            let unknown = !s2.isFinite
            return SequentialEstimate(difference: difference, rho: rho, halfWidth: unknown ? .infinity : 0, lower: unknown ? -.infinity : difference,
                                      upper: unknown ? .infinity : difference, pValue: unknown || difference == 0 ? 1 : 0)
        }
        let halfWidth = s2.squareRoot() * (2 * (nr2 + 1) / (nr2 * n) * log((nr2 + 1).squareRoot() / alpha)).squareRoot()
        let logE = n * nr2 * difference * difference / (2 * s2 * (nr2 + 1)) - 0.5 * log(nr2 + 1)
        return SequentialEstimate(difference: difference, rho: rho, halfWidth: halfWidth, lower: difference - halfWidth,
                                  upper: difference + halfWidth, pValue: min(1, exp(-logE)))
    }

    /// An always-valid non-inferiority test: the one-sided (1 − α) bound of the confidence sequence
    /// at 2α must clear the margin, so looking every day does not inflate false "non-inferior" calls.
    public static func sequentialNonInferiority(difference: Double, varianceOfDifference: Double, units: Int, bound: Double,
                                                higherIsBetter: Bool, alpha: Double, tuning: Int) -> NonInferiorityResult {
        let sequence = sequential(difference: difference, varianceOfDifference: varianceOfDifference, units: units, alpha: 2 * alpha, tuning: tuning)
        let confidenceBound = higherIsBetter ? sequence.lower : sequence.upper
        let clears = higherIsBetter ? confidenceBound > bound : confidenceBound < bound
        // The e-value against the boundary, halved for one side.
        let shifted = sequential(difference: difference - bound, varianceOfDifference: varianceOfDifference, units: units, alpha: 2 * alpha, tuning: tuning)
        let onTheGoodSide = higherIsBetter ? difference > bound : difference < bound
        return NonInferiorityResult(difference: difference, bound: bound, pValue: onTheGoodSide ? shifted.pValue / 2 : 1,
                                    confidenceBound: confidenceBound, nonInferior: clears, alwaysValid: true)
    }

    /// One-sided non-inferiority test of a guardrail. Higher is better: H0 is difference ≤ −margin·μc;
    /// lower is better: H0 is difference ≥ +margin·μc. Non-inferior when p < α.
    public static func nonInferiority(control: MeanStatistics, treatment: MeanStatistics, relativeMargin: Double,
                                      higherIsBetter: Bool = true, alpha: Double = 0.05) -> NonInferiorityResult {
        let difference = treatment.mean - control.mean
        let se = max((control.variance / Double(control.n) + treatment.variance / Double(treatment.n)).squareRoot(), 1e-300)
        let z1 = Distributions.normalQuantile(1 - alpha)
        if higherIsBetter {
            let bound = -relativeMargin * control.mean
            let p = Distributions.normalSurvival((difference - bound) / se)
            return NonInferiorityResult(difference: difference, bound: bound, pValue: p, confidenceBound: difference - z1 * se, nonInferior: p < alpha,
                                        alwaysValid: nil)
        }
        let bound = relativeMargin * control.mean
        let p = Distributions.normalSurvival((bound - difference) / se)
        return NonInferiorityResult(difference: difference, bound: bound, pValue: p, confidenceBound: difference + z1 * se, nonInferior: p < alpha,
                                    alwaysValid: nil)
    }

    static func normalEstimate(_ estimate: Double, se rawSE: Double, alpha: Double) -> EffectEstimate {
        let z = Distributions.normalQuantile(1 - alpha / 2)
        guard rawSE.isFinite else {
            return EffectEstimate(estimate: estimate, standardError: .infinity, pValue: 1, lower: -.infinity, upper: .infinity,
                                  degreesOfFreedom: nil)
        }
        let se = rawSE
        let p = se > 0 ? min(1, 2 * Distributions.normalSurvival(abs(estimate / se))) : 1
        return EffectEstimate(estimate: estimate, standardError: se, pValue: p, lower: estimate - z * se, upper: estimate + z * se,
                              degreesOfFreedom: nil)
    }

    // MARK: Multiple comparisons

    public static func adjust(_ pValues: [Double], by correction: MultipleTestingCorrection) -> [Double] {
        switch correction {
        case .holm: holm(pValues)
        case .benjaminiHochberg: benjaminiHochberg(pValues)
        }
    }

    /// Holm's step-down adjustment (controls the family-wise error rate).
    public static func holm(_ pValues: [Double]) -> [Double] {
        let order = pValues.indices.sorted { pValues[$0] < pValues[$1] }
        var adjusted = [Double](repeating: 1, count: pValues.count)
        var running = 0.0
        for (rank, index) in order.enumerated() {
            running = max(running, min(1, Double(pValues.count - rank) * pValues[index]))
            adjusted[index] = running
        }
        return adjusted
    }

    /// Benjamini–Hochberg step-up adjustment (controls the false discovery rate).
    public static func benjaminiHochberg(_ pValues: [Double]) -> [Double] {
        let m = Double(pValues.count)
        let order = pValues.indices.sorted { pValues[$0] > pValues[$1] }
        var adjusted = [Double](repeating: 1, count: pValues.count)
        var running = 1.0
        for (offset, index) in order.enumerated() {
            let rank = m - Double(offset)
            running = min(running, pValues[index] * m / rank)
            adjusted[index] = min(1, running)
        }
        return adjusted
    }
}
