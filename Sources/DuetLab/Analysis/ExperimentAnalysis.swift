public import DuetCore
public import DuetStore
public import Foundation

/// What an analysis recommends the reviewer decide.
public enum AnalysisVerdict: String, Codable, Sendable {
    case ship
    case noShip = "no-ship"
    case inconclusive

    public var outcome: DecisionOutcome {
        switch self {
        case .ship: .ship
        case .noShip: .noShip
        case .inconclusive: .inconclusive
        }
    }
}

/// One metric of one treatment against control.
public struct MetricResult: Codable, Sendable {
    public var metric: String
    public var arm: String
    public var role: String
    public var controlValue: Double
    public var treatmentValue: Double
    /// Absolute difference: Welch for means, delta method for ratios.
    public var absolute: EffectEstimate
    /// Relative lift (delta method), for mean metrics.
    public var relative: EffectEstimate?
    /// CUPED-adjusted difference, when a pre-period exists.
    public var cuped: EffectEstimate?
    public var sequential: SequentialEstimate?
    /// p-value adjusted across success metrics × arms (by the report's `correction`).
    public var adjustedPValue: Double?
    public var nonInferiority: NonInferiorityResult?
    public var higherIsBetter: Bool
    /// Significantly better, worse, or neither, by the estimate the decision rests on.
    public var verdict: String
}

public struct ArmSummary: Codable, Sendable {
    public var arm: String
    public var bundle: String
    public var users: Int
    public var exposures: Int
    public var fallbackExposures: Int
    public var fallbackReasons: [String: Int]
}

/// The experiment over time: one point per period (a day, or less for a short phase) since the
/// phase started, cumulative where a decision would look (users, effects) and per period where a
/// problem would show (exposures, fallback share).
public struct TimeSeries: Codable, Sendable {
    public var periodMillis: EpochMillis
    public var arms: [String]
    public var points: [TimePoint]
}

public struct TimePoint: Codable, Sendable {
    public var start: EpochMillis
    /// Users so far, per arm (spec order).
    public var users: [Int]
    /// Exposures in this period, per arm, excluded ones too.
    public var exposures: [Int]
    /// Share of this period's exposures served by fallback, per arm.
    public var fallbackShare: [Double]
    /// The sample-ratio p-value on the users so far.
    public var srmPValue: Double
    /// The cumulative effect of each success metric in each treatment arm, with the interval the
    /// decision uses (the always-valid band in sequential mode).
    public var effects: [PointEffect]
    /// Whether a recorded incident or a fallback burst overlaps the period.
    public var incident: Bool
}

public struct PointEffect: Codable, Sendable {
    public var metric: String
    public var arm: String
    public var estimate: Double
    public var lower: Double
    public var upper: Double
}

public struct ExperimentAnalysisReport: Codable, Sendable {
    public var experiment: String
    public var hypothesis: String
    public var phase: Int
    public var window: [EpochMillis]
    public var frozenAt: [Int64]
    public var arms: [ArmSummary]
    public var srm: SampleRatioCheck
    public var metrics: [MetricResult]
    public var incidents: [String]
    public var excludedExposures: Int
    public var conflictingUsers: Int
    public var recommendation: AnalysisVerdict
    public var reasons: [String]
    public var sequential: Bool
    public var plannedSampleSize: Int?
    /// "holm" or "bh"; absent in analyses made before the choice existed (they used Holm).
    public var correction: MultipleTestingCorrection?
    /// The CUPED covariate's window: the same days before the experiment's first start for every phase.
    public var cupedWindow: [EpochMillis]?
    /// Feedback events left out because they fell inside an incident window or a fallback burst.
    public var excludedEvents: Int?
    /// How non-inferiority is judged, stated so a reviewer need not guess.
    public var nonInferiorityConvention: String?
    /// The analysis code's version: part of what the analysis id covers.
    public var engine: String?
    public var overTime: TimeSeries?
    public var power: PowerSoFar?
    /// Every metric the log supports, by segment: exploratory, never part of the recommendation.
    public var exploratory: [ExploratoryResult]?
    /// "holdout" for a holdout's analysis; absent for an A/B test (so their ids are unchanged).
    public var kind: String?

    /// How a holdout's recommendation reads: launches against the held-out slice.
    public var holdoutSummary: String? {
        guard kind == ExperimentKind.holdout.rawValue else { return nil }
        let effect = switch recommendation {
        case .ship: "the launches helped"
        case .noShip: "the launches hurt"
        case .inconclusive: "no clear effect yet"
        }
        return "holdout: '\(arms.last?.arm ?? "launches")' against '\(arms.first?.arm ?? "holdout")' is what every launch since it began did together: \(effect)"
    }

    /// Raised whenever the analysis' arithmetic or inputs change meaning.
    /// 3: feedback carrying a request id counts only for the experiments of that request's list.
    public static let engineVersion = "3"

    public static let nonInferiorityConventionText = "margin × control mean, the control mean treated as fixed (as Spotify Confidence does)"

    /// SHA-256 of the canonical JSON: what a decision cites as its evidence.
    public func hash() throws -> String {
        SHA256.hash(data: try canonicalJSON()).lowercaseHex
    }

    public func canonicalJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = Self.nonFinite
        return try encoder.encode(self)
    }

    /// Undefined intervals (an arm with no data) are written as "Infinity"/"NaN" strings, not dropped.
    static let nonFinite = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")

    public static func decode(_ data: Data) throws -> ExperimentAnalysisReport {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try decoder.decode(ExperimentAnalysisReport.self, from: data)
    }
}

public enum ExperimentAnalyzer {
    /// Analyses one phase (default: the current one). Pure arithmetic over the frozen event data;
    /// the decision rule is in `recommend`.
    public static func analyze(record: ExperimentRecord, phase: ExperimentPhase, data: ExperimentData, incidents: [Incident],
                               excludeIncidents: Bool, alpha: Double = 0.05, correction: MultipleTestingCorrection = .holm,
                               until: EpochMillis? = nil) -> ExperimentAnalysisReport {
        let spec = phase.spec
        let control = spec.control
        // In user order, so sums add up in the same order and the same data gives the same bytes.
        let userIDs = data.users.keys.sorted()
        let users = userIDs.map { data.users[$0]! }
        let byArm = Dictionary(grouping: users, by: \.arm)
        let arms = spec.arms.map { arm in
            let tallies = byArm[arm.name] ?? []
            return ArmSummary(arm: arm.name, bundle: arm.bundleID, users: tallies.count, exposures: data.exposuresByArm[arm.name] ?? 0,
                              fallbackExposures: data.fallbackExposuresByArm[arm.name] ?? 0,
                              fallbackReasons: data.fallbacksByArm[arm.name] ?? [:])
        }
        let srm = ABStatistics.sampleRatioMismatch(counts: arms.map(\.users), weights: spec.arms.map(\.weight))
        var results: [MetricResult] = []
        let roles = spec.successMetrics.map { ($0, "success", nil as Double?) } + spec.guardrails.map { ($0.metric, "guardrail", $0.margin as Double?) }
        for treatment in spec.arms.dropFirst() {
            let c = byArm[control.name] ?? [], t = byArm[treatment.name] ?? []
            for (name, role, margin) in roles {
                guard let metric = ExperimentMetric(rawValue: name), c.count >= 2, t.count >= 2 else { continue }
                results.append(result(metric: metric, role: role, margin: margin, arm: treatment.name, control: c, treatment: t,
                                      sequentialTuning: spec.sequentialTuning, alpha: alpha))
            }
        }
        // Adjusted across success metrics × arms: shipping on any one of several metrics needs it.
        let successIndexes = results.indices.filter { results[$0].role == "success" }
        let adjusted = ABStatistics.adjust(successIndexes.map { results[$0].decisive.pValue }, by: correction)
        for (offset, index) in successIndexes.enumerated() {
            results[index].adjustedPValue = adjusted[offset]
            let effect = results[index].decisive
            let better = results[index].higherIsBetter ? effect.lower > 0 : effect.upper < 0
            let worse = results[index].higherIsBetter ? effect.upper < 0 : effect.lower > 0
            let significant = adjusted[offset] < alpha
            results[index].verdict = significant && better ? "better" : (significant && worse ? "worse" : "no clear difference")
        }
        // An open phase ends at its newest exposure read, so the window follows from the frozen position.
        let window = [phase.startedAt, phase.endedAt ?? record.stoppedAt ?? until ?? data.lastExposureAt.map { $0 + 1 } ?? phase.startedAt]
        let overlapping = incidents.filter { $0.from < window[1] && $0.until > window[0] }
        var incidentNotes = overlapping.map { "\(TimestampParser.iso8601String($0.from)) – \(TimestampParser.iso8601String($0.until)): \($0.reason) (\(excludeIncidents ? "excluded" : "included"))" }
        let unaccounted = data.fallbackBursts.filter { burst in !incidents.contains { $0.from <= burst.lowerBound && $0.until >= burst.upperBound } }
        incidentNotes += unaccounted.map {
            "fallback burst \(TimestampParser.iso8601String($0.lowerBound)) not covered by a recorded incident (\(excludeIncidents ? "excluded" : "included"))"
        }
        var report = ExperimentAnalysisReport(
            experiment: spec.id, hypothesis: spec.hypothesis, phase: phase.phase, window: window,
            frozenAt: [data.frozenAt.events, data.frozenAt.exposures], arms: arms, srm: srm, metrics: results,
            incidents: incidentNotes, excludedExposures: data.excludedExposures, conflictingUsers: data.conflictingUsers,
            recommendation: .inconclusive, reasons: [], sequential: spec.sequentialTuning != nil, plannedSampleSize: spec.plannedSampleSize,
            correction: correction, cupedWindow: data.cupedWindow.map { [$0.lowerBound, $0.upperBound] }, excludedEvents: data.excludedEvents,
            nonInferiorityConvention: ExperimentAnalysisReport.nonInferiorityConventionText, engine: ExperimentAnalysisReport.engineVersion)
        if spec.isHoldout { report.kind = ExperimentKind.holdout.rawValue }
        report.overTime = series(spec: spec, phase: phase, data: data, userIDs: userIDs, window: window, incidents: overlapping,
                                 bursts: data.fallbackBursts, alpha: alpha)
        report.exploratory = ExploratoryAnalysis.analyze(spec: spec, data: data, userIDs: userIDs, alpha: alpha)
        report.power = powerSoFar(spec: spec, byArm: byArm, users: arms.map(\.users), window: window, alpha: alpha)
        (report.recommendation, report.reasons) = recommend(report, unaccountedIncidents: unaccounted.count)
        return report
    }

    /// The power reached for the spec's minimum detectable effect on its first success metric, from
    /// the control's observed variance, and the days left at the pace users have come so far.
    static func powerSoFar(spec: ExperimentSpec, byArm: [String: [UserTally]], users: [Int], window: [EpochMillis], alpha: Double) -> PowerSoFar? {
        guard let name = spec.successMetrics.first, let metric = ExperimentMetric(rawValue: name),
              let control = byArm[spec.control.name], control.count >= 2 else { return nil }
        let effect = spec.minimumDetectableEffect ?? 0.02
        let (mean, variance) = PowerAnalysis.perUserMoments(control, metric: metric)
        guard let needed = try? PowerAnalysis.usersNeeded(mean: mean, variance: variance, relativeEffect: effect, weights: spec.arms.map(\.weight),
                                                          alpha: alpha) else { return nil }
        let weightSum = spec.arms.reduce(0) { $0 + $1.weight }
        let perArm = spec.arms.map { Int((Double(needed) * $0.weight / weightSum).rounded(.up)) }
        let reached = PowerAnalysis.achievedPower(mean: mean, variance: variance, relativeEffect: effect, usersPerArm: users, alpha: alpha)
        let have = users.reduce(0, +)
        let days = Double(window[1] - window[0]) / 86_400_000
        let pace = days > 0 ? Double(have) / days : 0
        let remaining = reached >= 0.8 ? nil : pace > 0 ? max(0, Double(needed - have)) / pace : nil
        return PowerSoFar(metric: name, minimumDetectableEffect: effect, reached: reached, usersNeededPerArm: perArm, daysRemaining: remaining)
    }

    /// The series over time, in one pass over each user's per-period counts.
    /// `userIDs` are the data's users, sorted: sums add up in that order.
    static func series(spec: ExperimentSpec, phase: ExperimentPhase, data: ExperimentData, userIDs: [String], window: [EpochMillis], incidents: [Incident],
                       bursts: [ClosedRange<EpochMillis>], alpha: Double) -> TimeSeries {
        let period = data.periodMillis
        let lastPeriod = min(399, max(0, Int((window[1] - 1 - phase.startedAt) / period)))
        var usersByPeriod: [Int: [String]] = [:]
        for (user, periods) in data.periodsByUser where data.users[user] != nil {
            for index in periods.keys { usersByPeriod[index, default: []].append(user) }
        }
        let armNames = spec.arms.map(\.name)
        var cumulative: [String: UserTally] = [:]
        var points: [TimePoint] = []
        for index in 0...lastPeriod {
            for user in usersByPeriod[index] ?? [] {
                guard let whole = data.users[user], let counts = data.periodsByUser[user]?[index] else { continue }
                var tally = cumulative[user] ?? {
                    var fresh = UserTally(arm: whole.arm)
                    (fresh.prePlays, fresh.preSkips, fresh.preSaves, fresh.preListening) = (whole.prePlays, whole.preSkips, whole.preSaves, whole.preListening)
                    return fresh
                }()
                tally.add(counts)
                cumulative[user] = tally
            }
            let byArm = Dictionary(grouping: userIDs.compactMap { cumulative[$0] }.filter { $0.exposures > 0 }, by: \.arm)
            let users = armNames.map { byArm[$0]?.count ?? 0 }
            let served = data.servedByPeriod[index] ?? [:]
            var effects: [PointEffect] = []
            for treatment in spec.arms.dropFirst() {
                let c = byArm[spec.control.name] ?? [], t = byArm[treatment.name] ?? []
                guard c.count >= 2, t.count >= 2 else { continue }
                for name in spec.successMetrics {
                    guard let metric = ExperimentMetric(rawValue: name) else { continue }
                    let effect = result(metric: metric, role: "success", margin: nil, arm: treatment.name, control: c, treatment: t,
                                        sequentialTuning: spec.sequentialTuning, alpha: alpha).decisive
                    effects.append(PointEffect(metric: name, arm: treatment.name, estimate: effect.estimate, lower: effect.lower, upper: effect.upper))
                }
            }
            let start = phase.startedAt + EpochMillis(index) * period
            let span = start...(start + period - 1)
            points.append(TimePoint(
                start: start, users: users, exposures: armNames.map { served[$0]?.exposures ?? 0 },
                fallbackShare: armNames.map { arm in served[arm].map { $0.exposures > 0 ? Double($0.fallbackExposures) / Double($0.exposures) : 0 } ?? 0 },
                srmPValue: ABStatistics.sampleRatioMismatch(counts: users, weights: spec.arms.map(\.weight)).pValue, effects: effects,
                incident: incidents.contains { $0.from <= span.upperBound && $0.until > span.lowerBound } || bursts.contains { $0.overlaps(span) }))
        }
        return TimeSeries(periodMillis: period, arms: armNames, points: points)
    }

    /// Ship only when: SRM passes; no incident is unaccounted for; treatment bundles served without
    /// fallbacks; at least one success metric is significantly better; every guardrail is
    /// significantly non-inferior. A significantly worse success metric or a failed guardrail is
    /// no-ship; anything else is inconclusive. Every reason is listed.
    static func recommend(_ report: ExperimentAnalysisReport, unaccountedIncidents: Int) -> (AnalysisVerdict, [String]) {
        var blockers: [String] = []
        var harms: [String] = []
        if report.srm.detected {
            blockers.append(String(format: "sample ratio mismatch (%@): p = %.2g < 0.001; assignment or logging is broken, so no effect can be trusted",
                                   report.srm.method ?? "chi-squared", report.srm.pValue))
        } else if report.srm.tooSmallToJudge == true {
            blockers.append("too few users to judge the sample ratio (an expected arm count is under 5); wait for more traffic")
        }
        if unaccountedIncidents > 0 { blockers.append("\(unaccountedIncidents) fallback burst(s) not covered by a recorded incident") }
        if report.conflictingUsers > 0 { blockers.append("\(report.conflictingUsers) user(s) were seen in more than one arm") }
        for arm in report.arms.dropFirst() where arm.exposures > 0 {
            let share = Double(arm.fallbackExposures) / Double(arm.exposures)
            if share > 0.01 {
                harms.append(String(format: "arm '%@' was served by fallback for %.1f%% of its exposures (%@)", arm.arm, share * 100,
                                    arm.fallbackReasons.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", ")))
            }
        }
        if report.arms.contains(where: { $0.users < 2 }) { blockers.append("an arm has fewer than two users; nothing to compare yet") }
        let success = report.metrics.filter { $0.role == "success" }
        let better = success.filter { $0.verdict == "better" }
        let worse = success.filter { $0.verdict == "worse" }
        for metric in worse { harms.append("\(metric.metric) is significantly worse in arm '\(metric.arm)'") }
        for guardrail in report.metrics where guardrail.role == "guardrail" {
            if guardrail.nonInferiority?.nonInferior != true {
                harms.append("guardrail \(guardrail.metric) is not shown non-inferior in arm '\(guardrail.arm)'")
            }
        }
        if let planned = report.plannedSampleSize, !report.sequential, report.arms.contains(where: { $0.users < planned }) {
            blockers.append("the planned sample size of \(planned) users per arm is not reached yet")
        }
        if !blockers.isEmpty { return (.inconclusive, blockers + harms) }
        if !harms.isEmpty { return (.noShip, harms) }
        guard !better.isEmpty else { return (.inconclusive, ["no success metric is significantly better"]) }
        let adjustedBy = (report.correction ?? .holm).label
        return (.ship, better.map { "\($0.metric) is significantly better in arm '\($0.arm)' (\(adjustedBy)-adjusted p = \(String(format: "%.2g", $0.adjustedPValue ?? 1)))" }
            + ["sample ratio is as planned (p = \(String(format: "%.2g", report.srm.pValue)))"])
    }

    static func result(metric: ExperimentMetric, role: String, margin: Double?, arm: String, control: [UserTally],
                       treatment: [UserTally], sequentialTuning: Int?, alpha: Double) -> MetricResult {
        if metric.isRatio {
            func stats(_ tallies: [UserTally]) -> RatioStatistics {
                var s = RatioStatistics(n: tallies.count, sumM: 0, sumM2: 0, sumD: 0, sumD2: 0, sumMD: 0)
                for tally in tallies {
                    let (m, d) = tally.value(metric)
                    s.sumM += m; s.sumM2 += m * m; s.sumD += d; s.sumD2 += d * d; s.sumMD += m * d
                }
                return s
            }
            let c = stats(control), t = stats(treatment)
            let effect = ABStatistics.ratio(control: c, treatment: t, alpha: alpha)
            let sequential = sequentialTuning.map { ABStatistics.sequential(control: c, treatment: t, alpha: alpha, tuning: $0) }
            var nonInferiority: NonInferiorityResult?
            if let margin {
                // Ratio guardrails: one-sided test on the delta-method estimate against ±margin·control.
                let bound = metric.higherIsBetter ? -margin * c.ratio : margin * c.ratio
                if let tuning = sequentialTuning {
                    nonInferiority = ABStatistics.sequentialNonInferiority(
                        difference: effect.estimate, varianceOfDifference: effect.standardError * effect.standardError, units: c.n + t.n,
                        bound: bound, higherIsBetter: metric.higherIsBetter, alpha: alpha, tuning: tuning)
                } else {
                    let margin = metric.higherIsBetter ? effect.estimate - bound : bound - effect.estimate
                    let p = effect.standardError > 0 ? Distributions.normalSurvival(margin / effect.standardError) : (margin > 0 ? 0 : 1)
                    let z1 = Distributions.normalQuantile(1 - alpha)
                    nonInferiority = NonInferiorityResult(difference: effect.estimate, bound: bound, pValue: p,
                                                          confidenceBound: metric.higherIsBetter ? effect.estimate - z1 * effect.standardError : effect.estimate + z1 * effect.standardError,
                                                          nonInferior: p < alpha)
                }
            }
            return MetricResult(metric: metric.rawValue, arm: arm, role: role, controlValue: c.ratio, treatmentValue: t.ratio,
                                absolute: effect, relative: nil, cuped: nil, sequential: sequential, adjustedPValue: nil,
                                nonInferiority: nonInferiority, higherIsBetter: metric.higherIsBetter, verdict: "no clear difference")
        }
        let c = MeanStatistics(values: control.map { $0.value(metric).0 })
        let t = MeanStatistics(values: treatment.map { $0.value(metric).0 })
        func covariates(_ tallies: [UserTally]) -> CovariateStatistics {
            var s = CovariateStatistics(n: tallies.count, sumY: 0, sumY2: 0, sumX: 0, sumX2: 0, sumXY: 0)
            for tally in tallies {
                let y = tally.value(metric).0, x = tally.value(metric, pre: true).0
                s.sumY += y; s.sumY2 += y * y; s.sumX += x; s.sumX2 += x * x; s.sumXY += x * y
            }
            return s
        }
        let cc = covariates(control), ct = covariates(treatment)
        let hasPrePeriod = cc.sumX2 + ct.sumX2 > 0
        let welch = ABStatistics.welch(control: c, treatment: t, alpha: alpha)
        let relative = c.mean != 0 ? ABStatistics.relativeLift(control: c, treatment: t, alpha: alpha) : nil
        let cuped = hasPrePeriod ? ABStatistics.cuped(control: cc, treatment: ct, alpha: alpha).effect : nil
        let sequential = sequentialTuning.map { ABStatistics.sequential(control: c, treatment: t, alpha: alpha, tuning: $0) }
        let nonInferiority = margin.map { margin in
            guard let tuning = sequentialTuning else {
                return ABStatistics.nonInferiority(control: c, treatment: t, relativeMargin: margin, higherIsBetter: metric.higherIsBetter, alpha: alpha)
            }
            return ABStatistics.sequentialNonInferiority(
                difference: t.mean - c.mean, varianceOfDifference: c.variance / Double(c.n) + t.variance / Double(t.n), units: c.n + t.n,
                bound: metric.higherIsBetter ? -margin * c.mean : margin * c.mean, higherIsBetter: metric.higherIsBetter, alpha: alpha, tuning: tuning)
        }
        return MetricResult(metric: metric.rawValue, arm: arm, role: role, controlValue: c.mean, treatmentValue: t.mean,
                            absolute: welch, relative: relative, cuped: cuped, sequential: sequential, adjustedPValue: nil,
                            nonInferiority: nonInferiority, higherIsBetter: metric.higherIsBetter, verdict: "no clear difference")
    }
}

extension MetricResult {
    /// The estimate decisions rest on: the sequential interval when testing sequentially, else
    /// CUPED when a pre-period exists (less variance, same expectation), else the plain one.
    public var decisive: EffectEstimate {
        if let sequential {
            return EffectEstimate(estimate: sequential.difference, standardError: sequential.halfWidth, pValue: sequential.pValue,
                                  lower: sequential.lower, upper: sequential.upper, degreesOfFreedom: nil)
        }
        return cuped ?? absolute
    }
}
