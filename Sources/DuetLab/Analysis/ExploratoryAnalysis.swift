import DuetCore
import Foundation

/// One metric nobody declared, in one segment, for one treatment arm against control.
public struct ExploratoryResult: Codable, Sendable {
    public var metric: String
    public var segment: String
    public var arm: String
    public var controlUsers: Int
    public var treatmentUsers: Int
    public var controlValue: Double
    public var treatmentValue: Double
    public var difference: Double
    public var lower: Double
    public var upper: Double
    /// Relative to control, when control is not zero.
    public var relative: Double?
    public var pValue: Double
    /// Benjamini–Hochberg across every exploratory test of the analysis (its own family).
    public var qValue: Double
    /// Large (|relative| ≥ 5%) and significant (q < 0.05): worth a reviewer's look.
    public var surprise: Bool
}

/// Every metric the event log supports, for every experiment, broken down by segments fixed
/// before the treatment could act (activity tercile and top genre from the pre-period). These are
/// exploratory: their own correction, shown apart, never part of the recommendation.
enum ExploratoryAnalysis {
    static let sessionGap: EpochMillis = 30 * 60_000
    static let minimumUsersPerArm = 10
    static let largeRelativeEffect = 0.05

    /// A per-user value, or nil when the metric is undefined for the user (no plays, no sessions).
    typealias PerUser = (UserTally, UserExploration?) -> Double?

    static func metrics(popularity: [String: Double]) -> [(String, PerUser)] {
        [
            ("plays_per_user", { t, _ in t.plays }),
            ("saves_per_user", { t, _ in t.saves }),
            ("skips_per_user", { t, _ in t.skips }),
            ("listening_per_user", { t, _ in t.listening }),
            ("distinct_items_played", { _, e in Double(e?.itemPlays.count ?? 0) }),
            // Share of a user's plays that went to distinct items: 1 is all different, low is repeats.
            ("catalogue_diversity", { _, e in
                guard let plays = e?.itemPlays, !plays.isEmpty else { return nil }
                return Double(plays.count) / Double(plays.values.reduce(0, +))
            }),
            // Mean −log2 of the played items' share of all plays: higher is less mainstream.
            ("novelty_of_plays", { _, e in
                guard let plays = e?.itemPlays, !plays.isEmpty else { return nil }
                var sum = 0.0, count = 0.0
                for (item, times) in plays.sorted(by: { $0.key < $1.key }) {
                    sum += -log2(popularity[item] ?? 1) * Double(times)
                    count += Double(times)
                }
                return sum / count
            }),
            ("sessions_per_user", { _, e in Double(sessions(e?.feedbackTimes ?? []).count) }),
            ("session_minutes", { _, e in
                let spans = sessions(e?.feedbackTimes ?? [])
                guard !spans.isEmpty else { return nil }
                return spans.map { Double($0.upperBound - $0.lowerBound) / 60_000 }.reduce(0, +) / Double(spans.count)
            }),
        ]
    }

    /// Feedback split into sessions at gaps of 30 minutes.
    static func sessions(_ times: [EpochMillis]) -> [ClosedRange<EpochMillis>] {
        let sorted = times.sorted()
        guard var start = sorted.first else { return [] }
        var last = start, spans: [ClosedRange<EpochMillis>] = []
        for time in sorted.dropFirst() {
            if time - last > sessionGap {
                spans.append(start...last)
                start = time
            }
            last = time
        }
        spans.append(start...last)
        return spans
    }

    /// `userIDs` are the data's users, sorted, so every sum adds up in the same order: the same data
    /// gives the same bytes.
    static func analyze(spec: ExperimentSpec, data: ExperimentData, userIDs: [String], alpha: Double) -> [ExploratoryResult] {
        let users = userIDs.compactMap { id in data.users[id].flatMap { $0.exposures > 0 ? (key: id, value: $0) : nil } }
        guard !users.isEmpty else { return [] }
        var plays: [String: Double] = [:]
        for explored in data.exploration.values { for (item, times) in explored.itemPlays { plays[item, default: 0] += Double(times) } }
        let total = plays.values.reduce(0, +)
        let popularity = total > 0 ? plays.mapValues { $0 / total } : [:]

        var segments: [(String, Set<String>)] = [("all users", Set(users.map(\.key)))]
        // Activity terciles of the pre-period plays; nothing to cut when nobody has a pre-period.
        let ranked = users.sorted { ($0.value.prePlays, $0.key) < ($1.value.prePlays, $1.key) }.map(\.key)
        if users.contains(where: { $0.value.prePlays > 0 }) {
            let third = ranked.count / 3
            segments += [("activity: low", Set(ranked[..<third])), ("activity: middle", Set(ranked[third..<(2 * third)])),
                         ("activity: high", Set(ranked[(2 * third)...]))]
        }
        var topGenre: [String: [String]] = [:]
        for user in users.map(\.key) {
            guard let genres = data.exploration[user]?.preGenres, let top = genres.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }) else { continue }
            topGenre[top.key, default: []].append(user)
        }
        for (genre, members) in topGenre.sorted(by: { ($0.value.count, $1.key) > ($1.value.count, $0.key) }).prefix(5) {
            segments.append(("top genre: \(genre)", Set(members)))
        }

        var results: [ExploratoryResult] = []
        for (segment, members) in segments {
            let inSegment = users.filter { members.contains($0.key) }
            for treatment in spec.arms.dropFirst() {
                let control = inSegment.filter { $0.value.arm == spec.control.name }, treated = inSegment.filter { $0.value.arm == treatment.name }
                guard control.count >= minimumUsersPerArm, treated.count >= minimumUsersPerArm else { continue }
                for (name, value) in metrics(popularity: popularity) {
                    let c = control.compactMap { value($0.value, data.exploration[$0.key]) }, t = treated.compactMap { value($0.value, data.exploration[$0.key]) }
                    guard c.count >= minimumUsersPerArm, t.count >= minimumUsersPerArm else { continue }
                    let cs = MeanStatistics(values: c), ts = MeanStatistics(values: t)
                    results.append(result(name, segment, treatment.name, cs.n, ts.n, cs.mean, ts.mean, ABStatistics.welch(control: cs, treatment: ts, alpha: alpha)))
                }
                for metric in [ExperimentMetric.playThroughRate, .skipRate] {
                    func ratio(_ tallies: [(key: String, value: UserTally)]) -> RatioStatistics {
                        var s = RatioStatistics(n: 0, sumM: 0, sumM2: 0, sumD: 0, sumD2: 0, sumMD: 0)
                        for (_, tally) in tallies {
                            let (m, d) = tally.value(metric)
                            s.n += 1; s.sumM += m; s.sumM2 += m * m; s.sumD += d; s.sumD2 += d * d; s.sumMD += m * d
                        }
                        return s
                    }
                    let cr = ratio(control), tr = ratio(treated)
                    let effect = ABStatistics.ratio(control: cr, treatment: tr, alpha: alpha)
                    guard effect.standardError.isFinite else { continue }
                    results.append(result(metric.rawValue, segment, treatment.name, cr.n, tr.n, cr.ratio, tr.ratio, effect))
                }
            }
        }
        let q = ABStatistics.benjaminiHochberg(results.map(\.pValue))
        for index in results.indices {
            results[index].qValue = q[index]
            results[index].surprise = q[index] < alpha && abs(results[index].relative ?? 0) >= largeRelativeEffect
        }
        return results
    }

    static func result(_ metric: String, _ segment: String, _ arm: String, _ controlUsers: Int, _ treatmentUsers: Int,
                       _ controlValue: Double, _ treatmentValue: Double, _ effect: EffectEstimate) -> ExploratoryResult {
        ExploratoryResult(metric: metric, segment: segment, arm: arm, controlUsers: controlUsers, treatmentUsers: treatmentUsers,
                          controlValue: controlValue, treatmentValue: treatmentValue, difference: effect.estimate, lower: effect.lower,
                          upper: effect.upper, relative: controlValue != 0 ? effect.estimate / controlValue : nil, pValue: effect.pValue,
                          qValue: 1, surprise: false)
    }
}
