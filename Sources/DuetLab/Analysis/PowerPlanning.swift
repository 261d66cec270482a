public import DuetCore
public import DuetStore
import Foundation

/// How many users an experiment needs, and how long that takes at today's traffic.
public struct PowerPlan: Codable, Sendable {
    public var metric: String
    /// Relative lift to detect (0.02 = 2%).
    public var minimumDetectableEffect: Double
    public var alpha: Double
    public var power: Double
    public var weights: [Double]
    /// The metric's mean and per-user standard deviation over the history window.
    public var baselineMean: Double
    public var perUserStandardDeviation: Double
    public var usersPerArm: [Int]
    public var usersNeeded: Int
    /// Days of the history window read, and distinct users seen by the end of each day.
    public var historyDays: Int
    public var distinctUsersByDay: [Int]
    /// Days until `usersNeeded` distinct users have come, at the history's pace; nil when none came.
    public var daysNeeded: Double?
}

/// A running experiment's power so far: for its minimum detectable effect on its first success
/// metric, with the users it has and the control's observed variance.
public struct PowerSoFar: Codable, Sendable {
    public var metric: String
    public var minimumDetectableEffect: Double
    public var reached: Double
    public var usersNeededPerArm: [Int]
    /// At the pace users have arrived so far; nil when reached or when the pace is unknown.
    public var daysRemaining: Double?
}

/// Two-sided tests of control against each treatment, normal approximation, Bonferroni across the
/// treatments (Holm is never less powerful). For a ratio metric the per-user variance is the
/// delta method's.
public enum PowerAnalysis {
    /// Users needed in all, so that every treatment-vs-control comparison has `power`.
    public static func usersNeeded(mean: Double, variance: Double, relativeEffect: Double, weights: [Double],
                                   alpha: Double = 0.05, power: Double = 0.8) throws -> Int {
        try check(weights: weights, alpha: alpha, power: power, effect: relativeEffect)
        let delta = abs(relativeEffect * mean)
        guard delta > 0, variance > 0 else { throw DuetError.refused("the metric has no variance or a zero mean in the history; power cannot be planned") }
        let shares = weights.map { $0 / weights.reduce(0, +) }
        let z = Distributions.normalQuantile(1 - alpha / Double(2 * (weights.count - 1))) + Distributions.normalQuantile(power)
        // The comparison with the smallest treatment share needs the most users.
        let worst = shares.dropFirst().map { 1 / shares[0] + 1 / $0 }.max() ?? 0
        return Int((z * z * variance * worst / (delta * delta)).rounded(.up))
    }

    /// The power of the smallest-powered treatment comparison with these users per arm.
    public static func achievedPower(mean: Double, variance: Double, relativeEffect: Double, usersPerArm: [Int], alpha: Double = 0.05) -> Double {
        let delta = abs(relativeEffect * mean)
        guard usersPerArm.count >= 2, usersPerArm.allSatisfy({ $0 > 0 }), variance > 0 else { return 0 }
        let z = Distributions.normalQuantile(1 - alpha / Double(2 * (usersPerArm.count - 1)))
        return usersPerArm.dropFirst().map { treatment in
            let se = (variance / Double(usersPerArm[0]) + variance / Double(treatment)).squareRoot()
            return Distributions.normalCDF(delta / se - z)
        }.min() ?? 0
    }

    static func check(weights: [Double], alpha: Double, power: Double, effect: Double) throws {
        guard weights.count >= 2, weights.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw DuetError.invalidValue(field: "weights", reason: "needs a control and at least one treatment, each with a positive weight")
        }
        guard alpha > 0, alpha < 0.5 else { throw DuetError.invalidValue(field: "alpha", reason: "\(alpha) must be in (0, 0.5)") }
        guard power > 0.5, power < 1 else { throw DuetError.invalidValue(field: "power", reason: "\(power) must be in (0.5, 1)") }
        guard effect.isFinite, effect != 0, abs(effect) < 10 else { throw DuetError.invalidValue(field: "mde", reason: "\(effect) must be a non-zero relative lift, e.g. 0.02") }
    }

    /// Plans from the event log's last `days` before `until`: the metric per user over the window
    /// (each user active in it), and how many distinct users arrive day by day. One pass.
    public static func plan(log: any EventLog, metric: ExperimentMetric, relativeEffect: Double, weights: [Double], alpha: Double = 0.05,
                            power: Double = 0.8, days: Int = 14, until: EpochMillis) async throws -> PowerPlan {
        try check(weights: weights, alpha: alpha, power: power, effect: relativeEffect)
        guard (1...365).contains(days) else { throw DuetError.invalidValue(field: "days", reason: "\(days) must be 1–365") }
        let from = until - EpochMillis(days) * 86_400_000
        var tallies: [String: UserTally] = [:]
        var firstDay: [String: Int] = [:]
        let frozen = try await log.highWaterMark()
        try await log.forEachEvent(matching: EventFilter(from: from, until: until, maxSequence: frozen.events)) { page in
            for stored in page {
                let event = stored.event
                var tally = tallies[event.user] ?? UserTally(arm: "")
                switch event.kind {
                case .play: tally.plays += 1; tally.listening += Double(event.weight)
                case .skip: tally.skips += 1
                case .save: tally.saves += 1
                default: break
                }
                tallies[event.user] = tally
                let day = Int((event.timestamp - from) / 86_400_000)
                firstDay[event.user] = min(firstDay[event.user] ?? day, day)
            }
        }
        if metric == .playThroughRate {
            var cursor: Int64 = 0
            while true {
                let page = try await log.exposures(after: cursor, matching: EventFilter(from: from, until: until, maxSequence: frozen.exposures), limit: 20_000)
                guard let last = page.last else { break }
                cursor = last.sequence
                for stored in page { tallies[stored.exposure.user, default: UserTally(arm: "")].exposures += 1 }
            }
            tallies = tallies.filter { $0.value.exposures > 0 }
        }
        guard tallies.count >= 2 else { throw DuetError.refused("the event log has fewer than two users in the \(days) days before \(TimestampParser.iso8601String(until)); nothing to plan from") }
        let (mean, variance) = perUserMoments(Array(tallies.values), metric: metric)
        let needed = try usersNeeded(mean: mean, variance: variance, relativeEffect: relativeEffect, weights: weights, alpha: alpha, power: power)
        var arrivals = [Int](repeating: 0, count: days)
        for day in firstDay.values where day < days { arrivals[day] += 1 }
        var seen = 0
        let byDay = arrivals.map { seen += $0; return seen }
        return PowerPlan(metric: metric.rawValue, minimumDetectableEffect: relativeEffect, alpha: alpha, power: power, weights: weights,
                         baselineMean: mean, perUserStandardDeviation: variance.squareRoot(),
                         usersPerArm: weights.map { Int((Double(needed) * $0 / weights.reduce(0, +)).rounded(.up)) }, usersNeeded: needed,
                         historyDays: days, distinctUsersByDay: byDay, daysNeeded: daysToReach(needed, distinctByDay: byDay))
    }

    /// The day the cumulative distinct users reach `target`, interpolated; past the history, at the
    /// pace of its second half (new users slow as regulars are already counted).
    static func daysToReach(_ target: Int, distinctByDay: [Int]) -> Double? {
        guard let last = distinctByDay.last, last > 0 else { return nil }
        if let day = distinctByDay.firstIndex(where: { $0 >= target }) {
            let before = day == 0 ? 0 : distinctByDay[day - 1]
            let gained = distinctByDay[day] - before
            return Double(day) + (gained > 0 ? Double(target - before) / Double(gained) : 1)
        }
        let half = distinctByDay.count / 2
        let recentPace = Double(last - (half > 0 ? distinctByDay[half - 1] : 0)) / Double(distinctByDay.count - half)
        guard recentPace > 0 else { return nil }
        return Double(distinctByDay.count) + Double(target - last) / recentPace
    }

    /// Mean and per-user variance of a metric; for a ratio, the delta method's per-user variance.
    public static func perUserMoments(_ tallies: [UserTally], metric: ExperimentMetric) -> (mean: Double, variance: Double) {
        if metric.isRatio {
            var stats = RatioStatistics(n: 0, sumM: 0, sumM2: 0, sumD: 0, sumD2: 0, sumMD: 0)
            for tally in tallies {
                let (m, d) = tally.value(metric)
                stats.n += 1; stats.sumM += m; stats.sumM2 += m * m; stats.sumD += d; stats.sumD2 += d * d; stats.sumMD += m * d
            }
            let variance = ABStatistics.ratioVariance(stats) * Double(stats.n)
            return (stats.ratio, variance.isFinite ? variance : 0)
        }
        let stats = MeanStatistics(values: tallies.map { $0.value(metric).0 })
        return (stats.mean, stats.variance)
    }
}
