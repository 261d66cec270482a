public import DuetCore
public import DuetStore
import Foundation

/// The per-user metrics an experiment can be judged on, computed from the event log.
public enum ExperimentMetric: String, CaseIterable, Codable, Sendable {
    /// Play events attributed to the experiment, per exposed user.
    case playsPerUser = "plays_per_user"
    /// Plays / exposures: a ratio metric (delta method).
    case playThroughRate = "play_through_rate"
    case savesPerUser = "saves_per_user"
    /// Skips / (plays + skips): a ratio metric; lower is better.
    case skipRate = "skip_rate"
    /// Summed play weight (play counts or ms played), per exposed user.
    case listeningPerUser = "listening_per_user"

    public var isRatio: Bool { self == .playThroughRate || self == .skipRate }
    public var higherIsBetter: Bool { self != .skipRate }

    public static func named(_ name: String) throws -> ExperimentMetric {
        guard let metric = ExperimentMetric(rawValue: name) else {
            throw DuetError.invalidValue(field: "metric", reason: "'\(name)' is not a metric; choose from \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return metric
    }
}

/// One exposed user's tallies during the phase (and before it, for CUPED).
public struct UserTally: Sendable {
    public var arm: String
    public var exposures = 0
    public var fallbackExposures = 0
    public var plays = 0.0
    public var skips = 0.0
    public var saves = 0.0
    public var listening = 0.0
    public var prePlays = 0.0
    public var preSkips = 0.0
    public var preSaves = 0.0
    public var preListening = 0.0

    public init(arm: String) { self.arm = arm }

    /// (numerator, denominator) for ratio metrics, value for the others.
    public func value(_ metric: ExperimentMetric, pre: Bool = false) -> (Double, Double) {
        let plays = pre ? prePlays : self.plays, skips = pre ? preSkips : self.skips
        switch metric {
        case .playsPerUser: return (plays, 1)
        case .savesPerUser: return (pre ? preSaves : saves, 1)
        case .listeningPerUser: return (pre ? preListening : listening, 1)
        case .playThroughRate: return (plays, Double(max(exposures, 1)))
        case .skipRate: return (skips, plays + skips)
        }
    }
}

/// What the event log says about one phase of one experiment, frozen at a high-water mark.
public struct ExperimentData: Sendable {
    public var users: [String: UserTally] = [:]
    /// Exposures left out because they fell in an incident window or a fallback burst.
    public var excludedExposures = 0
    /// Feedback left out for the same reason.
    public var excludedEvents = 0
    /// Users seen in more than one arm within the phase (an assignment bug if it happens).
    public var conflictingUsers = 0
    /// Every exposure of the phase by assigned arm, excluded ones too: what was served is reported whole.
    public var exposuresByArm: [String: Int] = [:]
    public var fallbackExposuresByArm: [String: Int] = [:]
    public var fallbacksByArm: [String: [String: Int]] = [:]
    public var frozenAt: (events: Int64, exposures: Int64) = (0, 0)
    /// Minutes with a burst of fallback exposures, found in the log: excluded like incidents.
    public var fallbackBursts: [ClosedRange<EpochMillis>] = []
    /// The window the CUPED covariate comes from.
    public var cupedWindow: Range<EpochMillis>?
    /// The newest exposure read: where an open phase's window ends, so the same frozen position
    /// gives the same analysis whenever it is computed.
    public var lastExposureAt: EpochMillis?
    /// The length of one period of the series over time: a day, or less for a phase shorter than
    /// two days, so even a short run has a chart.
    public var periodMillis: EpochMillis = 86_400_000
    /// Per user, what happened in each period of the phase (period 0 starts at the phase's start):
    /// the series over time are computed from it in one pass, not one query per period.
    public var periodsByUser: [String: [Int: PeriodCounts]] = [:]
    /// Per period of the phase, every exposure and fallback by assigned arm (excluded ones too).
    public var servedByPeriod: [Int: [String: PeriodCounts]] = [:]
    /// Per user, what the exploratory metrics need: items played, feedback times, pre-period genres.
    public var exploration: [String: UserExploration] = [:]

    public init() {}
}

/// One user's raw material for the metrics nobody declared.
public struct UserExploration: Sendable {
    /// Attributed plays in the phase, by item.
    public var itemPlays: [String: Int] = [:]
    /// Times of attributed feedback in the phase (for sessions).
    public var feedbackTimes: [EpochMillis] = []
    /// Plays in the CUPED window by the item's first catalogue tag (its genre): a segment the
    /// treatment cannot have changed.
    public var preGenres: [String: Int] = [:]

    public init() {}
}

/// One user's (or one arm's) counts in one period.
public struct PeriodCounts: Sendable, Hashable {
    public var exposures = 0
    public var fallbackExposures = 0
    public var plays = 0.0
    public var skips = 0.0
    public var saves = 0.0
    public var listening = 0.0

    public init() {}

    mutating func add(_ other: PeriodCounts) {
        exposures += other.exposures
        fallbackExposures += other.fallbackExposures
        plays += other.plays
        skips += other.skips
        saves += other.saves
        listening += other.listening
    }
}

extension UserTally {
    /// Adds one period's counts to the phase's (the pre-period is untouched).
    mutating func add(_ counts: PeriodCounts) {
        exposures += counts.exposures
        fallbackExposures += counts.fallbackExposures
        plays += counts.plays
        skips += counts.skips
        saves += counts.saves
        listening += counts.listening
    }
}

public enum ExperimentDataReader {
    /// A minute with this many fallback exposures is a burst: excluded like an incident, and reported.
    public static let burstThreshold = 20

    /// Reads exposures of `experiment`/`phase` in [from, until) and attributes feedback to them:
    /// by `requestId` when the event carries one (feedback on a list outside this phase, such as a
    /// later rollout's, is never this experiment's), else by user within `attributionWindow` after
    /// the user's last exposure. Feedback inside `cupedWindow` (before the experiment's first start, the
    /// same for every phase) feeds the CUPED covariate; nothing between that window and the phase
    /// does, so an earlier phase's treatment cannot leak into it. With `excludeIncidents`,
    /// exposures and feedback inside incident windows and fallback bursts are left out.
    public static func read(log: any EventLog, experiment: String, phase: Int, from: EpochMillis, until: EpochMillis,
                            attributionWindow: EpochMillis, incidents: [Incident], excludeIncidents: Bool,
                            cupedWindow: Range<EpochMillis>? = nil, itemGenres: [String: String] = [:]) async throws -> ExperimentData {
        var data = ExperimentData()
        data.periodMillis = period(for: until - from)
        data.cupedWindow = cupedWindow
        data.frozenAt = try await log.highWaterMark()
        let exposures = EventFilter(from: from, until: until, maxSequence: data.frozenAt.exposures)

        // Pass 1: what was served, every exposure counted, and the minutes with fallback bursts.
        var fallbackMinutes: [EpochMillis: Int] = [:]
        let day = { [periodMillis = data.periodMillis] (time: EpochMillis) in Int((time - from) / periodMillis) }
        try await forEachExposure(log, matching: exposures, experiment: experiment, phase: phase) { exposure, arm in
            data.exposuresByArm[arm.assigned, default: 0] += 1
            data.servedByPeriod[day(exposure.timestamp), default: [:]][arm.assigned, default: PeriodCounts()].exposures += 1
            if arm.served != arm.assigned || arm.fallbackReason != nil {
                data.servedByPeriod[day(exposure.timestamp), default: [:]][arm.assigned, default: PeriodCounts()].fallbackExposures += 1
                data.fallbackExposuresByArm[arm.assigned, default: 0] += 1
                data.fallbacksByArm[arm.assigned, default: [:]][arm.fallbackReason ?? "unknown", default: 0] += 1
                fallbackMinutes[exposure.timestamp / 60_000, default: 0] += 1
            }
            data.lastExposureAt = max(data.lastExposureAt ?? .min, exposure.timestamp)
        }
        data.fallbackBursts = fallbackMinutes.filter { $0.value >= burstThreshold }.keys.sorted().map { ($0 * 60_000)...(($0 + 1) * 60_000 - 1) }
        let bursts = data.fallbackBursts
        func excluded(_ time: EpochMillis) -> Bool {
            excludeIncidents && (incidents.contains { $0.from <= time && time < $0.until } || bursts.contains { $0.contains(time) })
        }

        // Pass 2: the users and their exposures that count.
        var requestUsers: [String: String] = [:]
        var firstSeen: [String: EpochMillis] = [:]
        var lastSeen: [String: EpochMillis] = [:]
        try await forEachExposure(log, matching: exposures, experiment: experiment, phase: phase) { exposure, arm in
            if excluded(exposure.timestamp) {
                data.excludedExposures += 1
                return
            }
            var tally = data.users[exposure.user] ?? UserTally(arm: arm.assigned)
            if tally.arm != arm.assigned {
                data.conflictingUsers += 1
                return
            }
            var counts = PeriodCounts()
            counts.exposures = 1
            counts.fallbackExposures = arm.served != arm.assigned || arm.fallbackReason != nil ? 1 : 0
            tally.add(counts)
            data.periodsByUser[exposure.user, default: [:]][day(exposure.timestamp), default: PeriodCounts()].add(counts)
            data.users[exposure.user] = tally
            requestUsers[exposure.requestID] = exposure.user
            firstSeen[exposure.user] = min(firstSeen[exposure.user] ?? .max, exposure.timestamp)
            lastSeen[exposure.user] = max(lastSeen[exposure.user] ?? .min, exposure.timestamp)
        }

        // Feedback: the CUPED window, then the phase up to the attribution window after it.
        let filter = EventFilter(from: min(cupedWindow?.lowerBound ?? from, from), until: until + attributionWindow, maxSequence: data.frozenAt.events)
        try await log.forEachEvent(matching: filter) { page in
            for stored in page {
                let event = stored.event
                guard var tally = data.users[event.user] else { continue }
                let isPre = cupedWindow?.contains(event.timestamp) ?? false
                if !isPre {
                    guard event.timestamp >= from else { continue }
                    let attributed: Bool
                    if let requestID = event.requestID {
                        attributed = requestUsers[requestID] == event.user
                    } else if let first = firstSeen[event.user], let last = lastSeen[event.user] {
                        attributed = event.timestamp >= first && event.timestamp <= last + attributionWindow
                    } else {
                        attributed = false
                    }
                    guard attributed else { continue }
                    if excluded(event.timestamp) {
                        data.excludedEvents += 1
                        continue
                    }
                }
                // The event's counts once; they go to the pre-period or to the phase and its period.
                var counts = PeriodCounts()
                switch event.kind {
                case .play: (counts.plays, counts.listening) = (1, Double(event.weight))
                case .skip: counts.skips = 1
                case .save: counts.saves = 1
                default: break
                }
                if isPre {
                    tally.prePlays += counts.plays
                    tally.preListening += counts.listening
                    tally.preSkips += counts.skips
                    tally.preSaves += counts.saves
                    if event.kind == .play, let genre = itemGenres[event.item] { data.exploration[event.user, default: UserExploration()].preGenres[genre, default: 0] += 1 }
                } else {
                    tally.add(counts)
                    var explored = data.exploration[event.user] ?? UserExploration()
                    if event.kind == .play { explored.itemPlays[event.item, default: 0] += 1 }
                    if event.kind == .play || event.kind == .skip || event.kind == .save { explored.feedbackTimes.append(event.timestamp) }
                    data.exploration[event.user] = explored
                    // Feedback after the phase (within the attribution window) counts on its last day.
                    let eventDay = min(day(event.timestamp), day(max(until - 1, from)))
                    data.periodsByUser[event.user, default: [:]][eventDay, default: PeriodCounts()].add(counts)
                }
                data.users[event.user] = tally
            }
        }
        return data
    }

    /// A day for phases of two days or more; else the largest of 1 h, 10 min, 1 min, 10 s and 1 s
    /// that still gives ten periods.
    public static func period(for span: EpochMillis) -> EpochMillis {
        if span >= 2 * 86_400_000 { return 86_400_000 }
        return [3_600_000, 600_000, 60_000, 10_000, 1_000].first { span / $0 >= 10 } ?? 1_000
    }

    private static func forEachExposure(_ log: any EventLog, matching filter: EventFilter, experiment: String, phase: Int,
                                        _ body: (Exposure, ExperimentArmExposure) -> Void) async throws {
        var cursor: Int64 = 0
        while true {
            let page = try await log.exposures(after: cursor, matching: filter, limit: 20_000)
            guard let last = page.last else { return }
            cursor = last.sequence
            for stored in page {
                guard let arm = stored.exposure.experiments.first(where: { $0.experimentID == experiment && $0.phase == phase }) else { continue }
                body(stored.exposure, arm)
            }
        }
    }
}
