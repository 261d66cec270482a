import DuetCore
@testable import DuetLab
import DuetLabTestSupport
import DuetStore
import DuetTestSupport
import Foundation
import Testing

/// Analyses as evidence: computed from a frozen position into the same bytes every time, with the
/// statistics used as documented (CUPED's fixed pre-window, SRM always judged, incidents and
/// fallback bursts excluded, the chosen correction recorded).
@Suite struct AnalysisEvidenceTests {
    static func spec(_ fixture: LabFixture, weights: [Double] = [0.5, 0.5]) -> ExperimentSpec {
        ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: fixture.first, weight: weights[0]),
                                                          ExperimentArm(name: "treatment", bundleID: fixture.second, weight: weights[1])],
                       seed: "exp", successMetrics: ["plays_per_user"], approvalsRequired: 0)
    }

    @Test func aSampleRatioOf10000To5BlocksShippingAndSmallCountsAreJudgedExactly() {
        let spec = ExperimentSpec(id: "srm", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                     ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                  seed: "srm", successMetrics: ["plays_per_user"], status: .stopped)
        let record = ExperimentRecord(spec: spec, phase: 1, createdAt: 0, startedAt: 0, stoppedAt: 1_000)
        let phase = ExperimentPhase(phase: 1, spec: spec, reason: "r", startedAt: 0, endedAt: 1_000)
        var data = ExperimentData()
        for index in 0..<10_000 { data.users["c\(index)"] = { var t = UserTally(arm: "control"); t.exposures = 1; t.plays = Double(index % 3); return t }() }
        // Five treatment users who play far more: without the SRM check this would ship.
        for index in 0..<5 { data.users["t\(index)"] = { var t = UserTally(arm: "treatment"); t.exposures = 1; t.plays = 50 + Double(index); return t }() }
        let report = ExperimentAnalyzer.analyze(record: record, phase: phase, data: data, incidents: [], excludeIncidents: true)
        #expect(report.srm.detected && report.srm.method == "chi-squared")
        #expect(report.recommendation != .ship)
        #expect(report.reasons.contains { $0.contains("sample ratio mismatch") })

        let exact = ABStatistics.sampleRatioMismatch(counts: [9, 0], weights: [0.5, 0.5])
        #expect(exact.method == "exact binomial" && exact.pValue < 0.01 && !exact.detected && exact.tooSmallToJudge == true,
                "p = 2/512 is small, not below 0.001")
        let lopsided = ABStatistics.sampleRatioMismatch(counts: [0, 40], weights: [0.9, 0.1])
        #expect(lopsided.method == "exact binomial" && lopsided.detected, "0 of 40 where 36 were expected")
        let tooSmall = ABStatistics.sampleRatioMismatch(counts: [2, 0, 1], weights: [0.4, 0.3, 0.3])
        #expect(tooSmall.tooSmallToJudge == true && !tooSmall.detected)
        var few = ExperimentData()
        for (user, arm) in [("a", "control"), ("b", "control"), ("c", "treatment"), ("d", "treatment")] {
            few.users[user] = { var t = UserTally(arm: arm); t.exposures = 1; t.plays = arm == "treatment" ? 9 : 1; return t }()
        }
        let small = ExperimentAnalyzer.analyze(record: record, phase: phase, data: few, incidents: [], excludeIncidents: true)
        #expect(small.srm.method == "exact binomial")
        #expect(small.recommendation != .ship)
        #expect(small.reasons.contains { $0.contains("too few users to judge the sample ratio") })
    }

    /// Phase 2's covariate comes from before the experiment's first start, never from phase 1,
    /// where the treatment already changed what users did.
    @Test func phaseTwoCUPEDIgnoresPhaseOneBehaviour() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            let spec = Self.spec(fixture)
            try await lab.createExperiment(spec)
            try await lab.start(experiment: "exp")
            let firstStart = try #require(try await lab.registry.phases(of: "exp").first?.startedAt)
            // Before the experiment: user i plays i % 4 times, a day before it starts.
            var pre: [FeedbackEvent] = []
            for user in 0..<60 { for _ in 0..<(user % 4) { pre.append(FeedbackEvent(user: "u\(user)", item: "t1", kind: .play, weight: 1, timestamp: firstStart - 86_400_000)) } }
            _ = try await log.append(events: pre)
            // Phase 1: treatment users play 40 times each.
            var phaseOne: [FeedbackEvent] = []
            var exposures: [Exposure] = []
            for user in 0..<60 {
                let id = "u\(user)", arm = try #require(spec.assignedArm(for: id))
                exposures.append(Exposure(requestID: "p1-\(user)", user: id, timestamp: firstStart + 5, items: ["t1"], bundleID: arm.bundleID,
                                          experiments: [ExperimentArmExposure(experimentID: "exp", phase: 1, assigned: arm.name, served: arm.name)]))
                for _ in 0..<(arm.name == "treatment" ? 40 : 1) {
                    phaseOne.append(FeedbackEvent(user: id, item: "t2", kind: .play, weight: 1, timestamp: firstStart + 6, requestID: "p1-\(user)"))
                }
            }
            _ = try await log.append(exposures: exposures)
            _ = try await log.append(events: phaseOne)
            try await Task.sleep(for: .milliseconds(20))
            try await lab.changePhase(of: "exp", to: spec, reason: "phase 2")
            let secondStart = try #require(try await lab.registry.phases(of: "exp").last?.startedAt)
            try await LabFixture.traffic(log, spec: spec, phase: 2, users: 0..<60, at: secondStart + 5)

            let report = try await lab.analyze(experiment: "exp", phase: 2, eventLog: log).report
            #expect(report.cupedWindow == [firstStart - 14 * 86_400_000, firstStart], "phase 2's window is the one before the first start")
            let window = try #require(report.cupedWindow)
            let data = try await ExperimentDataReader.read(log: log, experiment: "exp", phase: 2, from: secondStart, until: Date().epochMillis + 1_000,
                                                           attributionWindow: 86_400_000, incidents: [], excludeIncidents: true,
                                                           cupedWindow: window[0]..<window[1])
            #expect(data.users.count == 60)
            for (user, tally) in data.users {
                let index = try #require(Int(user.dropFirst()))
                #expect(tally.prePlays == Double(index % 4), "\(user)'s covariate took in phase 1: \(tally.prePlays)")
            }
            let phaseOneReport = try await lab.analyze(experiment: "exp", phase: 1, eventLog: log).report
            #expect(phaseOneReport.cupedWindow == report.cupedWindow, "every phase uses the same window")
        }
    }

    @Test func twoAnalysesAtTheSameFrozenPositionAreTheSameBytes() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            try await lab.createExperiment(Self.spec(fixture))
            try await lab.start(experiment: "exp")
            try await LabFixture.traffic(log, spec: Self.spec(fixture), phase: 1, users: 0..<150, at: Date().epochMillis + 5)
            // Still running: the window must not end at the clock.
            let first = try await lab.analyze(experiment: "exp", eventLog: log)
            let firstBytes = try Data(contentsOf: first.jsonPath)
            try await Task.sleep(for: .milliseconds(1_100))
            let second = try await lab.analyze(experiment: "exp", eventLog: log)
            #expect(try Data(contentsOf: second.jsonPath) == firstBytes)
            #expect(second.hash == first.hash && second.jsonPath == first.jsonPath && first.jsonPath.lastPathComponent.contains(first.hash.prefix(12)))
            #expect(first.report.engine == ExperimentAnalysisReport.engineVersion)
            // New events move the frozen position, and with it the analysis id.
            try await LabFixture.traffic(log, spec: Self.spec(fixture), phase: 1, users: 150..<170, at: Date().epochMillis + 5)
            let third = try await lab.analyze(experiment: "exp", eventLog: log)
            #expect(third.hash != first.hash)

            // A decision names the analysis it rests on, and must name the newest.
            try await lab.stop(experiment: "exp", eventLog: log)
            let final = try #require(try lab.latestAnalysis(of: "exp"))
            await #expect { try await lab.decide(experiment: "exp", outcome: .abandon, arm: nil, reviewer: "ana", reason: "r", overrideReason: nil,
                                                 shown: String(first.hash.prefix(16))) } throws: { "\($0)".contains("review it before deciding") }
            await #expect { try await lab.decide(experiment: "exp", outcome: .abandon, arm: nil, reviewer: "ana", reason: "r", overrideReason: nil,
                                                 shown: String(final.1.prefix(8))) } throws: { "\($0)".contains("review it before deciding") }
            let (_, decision) = try await lab.decide(experiment: "exp", outcome: .abandon, arm: nil, reviewer: "ana", reason: "r", overrideReason: nil,
                                                     shown: String(final.1.prefix(16)))
            #expect(decision.analysisHash == final.1)
        }
    }

    /// On a fixed timeline: traffic in minute 0, a burst of fallbacks in minute 2, and feedback in
    /// minute 3 inside a recorded incident.
    @Test func incidentsExcludeFeedbackAndFallbackBurstsAreExcludedAndReported() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let spec = ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                         ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                      seed: "exp", successMetrics: ["plays_per_user"], status: .stopped)
            let start: EpochMillis = 1_767_225_600_000, end = start + 10 * 60_000
            try await LabFixture.traffic(log, spec: spec, phase: 1, users: 0..<100, at: start + 5)
            var burst: [Exposure] = []
            for user in 100..<130 {
                let id = "u\(user)", arm = try #require(spec.assignedArm(for: id))
                burst.append(Exposure(requestID: "b-\(user)", user: id, timestamp: start + 2 * 60_000 + 10, items: ["t1"], bundleID: "a",
                                      experiments: [ExperimentArmExposure(experimentID: "exp", phase: 1, assigned: arm.name, served: "control",
                                                                          fallbackReason: "treatment-bundle-unavailable")]))
            }
            _ = try await log.append(exposures: burst)
            let incident = Incident(from: start + 3 * 60_000, until: start + 4 * 60_000, reason: "cache outage", createdAt: start)
            _ = try await log.append(events: (0..<10).map { FeedbackEvent(user: "u\($0)", item: "t9", kind: .play, weight: 1, timestamp: incident.from + 10) })

            let record = ExperimentRecord(spec: spec, phase: 1, createdAt: start, startedAt: start, stoppedAt: end)
            let phase = ExperimentPhase(phase: 1, spec: spec, reason: "start", startedAt: start, endedAt: end)
            func analyze(excluding: Bool, correction: MultipleTestingCorrection) async throws -> ExperimentAnalysisReport {
                let data = try await ExperimentDataReader.read(log: log, experiment: "exp", phase: 1, from: start, until: end, attributionWindow: 86_400_000,
                                                               incidents: [incident], excludeIncidents: excluding)
                return ExperimentAnalyzer.analyze(record: record, phase: phase, data: data, incidents: [incident], excludeIncidents: excluding,
                                                  correction: correction)
            }
            let report = try await analyze(excluding: true, correction: .benjaminiHochberg)
            #expect(report.excludedExposures == 30, "the burst's exposures leave the metrics")
            #expect(report.excludedEvents == 10, "feedback inside the incident window leaves too")
            #expect(report.arms.reduce(0) { $0 + $1.users } == 100)
            #expect(report.arms.reduce(0) { $0 + $1.fallbackExposures } == 30, "what was served is still reported whole")
            #expect(report.incidents.contains { $0.contains("fallback burst") && $0.contains("excluded") })
            #expect(report.correction == .benjaminiHochberg)
            #expect(String(decoding: try report.canonicalJSON(), as: UTF8.self).contains(#""correction" : "bh""#))
            let kept = try await analyze(excluding: false, correction: .holm)
            #expect(kept.excludedExposures == 0 && kept.excludedEvents == 0 && kept.arms.reduce(0) { $0 + $1.users } == 130)
            #expect(kept.correction == .holm)
        }
    }

    /// Plays on a list this experiment did not serve (a later rollout's, say) never count for it, even
    /// inside the attribution window; plays without a request id still count by user and time.
    @Test func feedbackOnAnotherListNeverCountsForThisExperiment() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let spec = ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                         ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                      seed: "exp", successMetrics: ["plays_per_user"], status: .stopped)
            let day: EpochMillis = 86_400_000, start: EpochMillis = 1_767_225_600_000, end = start + day
            try await LabFixture.traffic(log, spec: spec, phase: 1, users: 0..<100, at: start + 1_000)
            func plays() async throws -> Double {
                let data = try await ExperimentDataReader.read(log: log, experiment: "exp", phase: 1, from: start, until: end, attributionWindow: day,
                                                               incidents: [], excludeIncidents: true)
                return data.users.values.reduce(0) { $0 + $1.plays }
            }
            let before = try await plays()
            #expect(before > 0)
            _ = try await log.append(events: (0..<100).flatMap { user in
                (0..<5).map { FeedbackEvent(user: "u\(user)", item: "t\($0)", kind: .play, weight: 1, timestamp: end + 1_000, requestID: "rollout-\(user)") }
                    + [FeedbackEvent(user: "u\(user)", item: "t9", kind: .play, weight: 1, timestamp: end + 1_000)]
            })
            #expect(try await plays() == before + 100, "only the 100 plays without a request id are attributed")
        }
    }

    /// Five days on a fixed timeline: the series has a point a day, counts what each day brought,
    /// shades the incident's day, and its last point is the whole analysis.
    @Test func theSeriesOverTimeFollowsTheDaysFromOnePass() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let spec = ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                         ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                      seed: "exp", successMetrics: ["plays_per_user"], status: .stopped)
            let day: EpochMillis = 86_400_000, start: EpochMillis = 1_767_225_600_000, end = start + 5 * day
            try await LabFixture.traffic(log, spec: spec, phase: 1, users: 0..<80, at: start + 1_000)
            try await LabFixture.traffic(log, spec: spec, phase: 1, users: 80..<200, at: start + 2 * day + 1_000)
            let incident = Incident(from: start + 3 * day, until: start + 3 * day + 3_600_000, reason: "outage", createdAt: start)
            let record = ExperimentRecord(spec: spec, phase: 1, createdAt: start, startedAt: start, stoppedAt: end)
            let phase = ExperimentPhase(phase: 1, spec: spec, reason: "start", startedAt: start, endedAt: end)
            let data = try await ExperimentDataReader.read(log: log, experiment: "exp", phase: 1, from: start, until: end, attributionWindow: day,
                                                           incidents: [incident], excludeIncidents: true)
            let report = ExperimentAnalyzer.analyze(record: record, phase: phase, data: data, incidents: [incident], excludeIncidents: true)
            let series = try #require(report.overTime)
            #expect(series.periodMillis == day && series.points.count == 5)
            #expect(series.points.map { $0.users.reduce(0, +) } == [80, 80, 200, 200, 200])
            #expect(series.points.map { $0.exposures.reduce(0, +) } == [80, 0, 120, 0, 0])
            #expect(series.points.map(\.incident) == [false, false, false, true, false])
            let last = try #require(series.points.last?.effects.first)
            let whole = try #require(report.metrics.first { $0.metric == "plays_per_user" }).decisive
            #expect(abs(last.estimate - whole.estimate) < 1e-9 && abs(last.lower - whole.lower) < 1e-9)
            let first = try #require(series.points.first?.effects.first)
            #expect(first.upper - first.lower > last.upper - last.lower, "the interval narrows as users arrive")
            let html = AnalysisReportHTML.render(report, hash: try report.hash())
            #expect(html.contains("cumulative effect: plays_per_user (treatment − control)") && html.contains("One point per day"))
        }
    }

    @Test func powerPlanningMatchesTheTextbookAndReadsTrafficFromTheLog() async throws {
        // n = (z(0.975) + z(0.8))² · σ² · (1/0.5 + 1/0.5) / δ² = 7.849 · 400 = 3,140 users.
        #expect(try PowerAnalysis.usersNeeded(mean: 1, variance: 1, relativeEffect: 0.1, weights: [0.5, 0.5]) == 3_140)
        let reached = PowerAnalysis.achievedPower(mean: 1, variance: 1, relativeEffect: 0.1, usersPerArm: [1_570, 1_570])
        #expect(abs(reached - 0.8) < 0.001)
        #expect(throws: DuetError.self) { try PowerAnalysis.usersNeeded(mean: 1, variance: 1, relativeEffect: 0, weights: [0.5, 0.5]) }
        #expect(throws: DuetError.self) { try PowerAnalysis.usersNeeded(mean: 1, variance: 1, relativeEffect: 0.1, weights: [1]) }

        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let day: EpochMillis = 86_400_000, end: EpochMillis = 1_767_225_600_000 + 14 * day
            // Ten new users a day for 14 days, each playing 1–4 times on the day they come.
            var events: [FeedbackEvent] = []
            for user in 0..<140 {
                for play in 0..<(1 + user % 4) {
                    events.append(FeedbackEvent(user: "u\(user)", item: "t\(play)", kind: .play, weight: 1, timestamp: end - 14 * day + EpochMillis(user / 10) * day + 1_000))
                }
            }
            _ = try await log.append(events: events)
            let plan = try await PowerAnalysis.plan(log: log, metric: .playsPerUser, relativeEffect: 0.1, weights: [0.5, 0.5], days: 14, until: end)
            #expect(plan.distinctUsersByDay == (1...14).map { $0 * 10 })
            #expect(abs(plan.baselineMean - 2.5) < 1e-9)
            let expected = try PowerAnalysis.usersNeeded(mean: 2.5, variance: MeanStatistics(values: (0..<140).map { Double(1 + $0 % 4) }).variance,
                                                          relativeEffect: 0.1, weights: [0.5, 0.5])
            #expect(plan.usersNeeded == expected)
            // Past the 140 users seen, at the second half's pace of 10 a day.
            #expect(abs((plan.daysNeeded ?? 0) - (14 + Double(expected - 140) / 10)) < 1e-9)
            let early = PowerAnalysis.daysToReach(25, distinctByDay: plan.distinctUsersByDay)
            #expect(abs((early ?? 0) - 2.5) < 1e-9, "25 users: half way through the third day")
        }
    }

    /// A harm nobody declared (heavy users skip far more in treatment) is found, in its segment,
    /// flagged for review, and kept out of the recommendation, which rests on the declared metric.
    @Test func exploratoryMetricsFindAnUndeclaredHarmWithoutDrivingTheDecision() {
        let spec = ExperimentSpec(id: "x", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                   ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                  seed: "x", successMetrics: ["plays_per_user"], status: .stopped)
        let record = ExperimentRecord(spec: spec, phase: 1, createdAt: 0, startedAt: 0, stoppedAt: 86_400_000)
        let phase = ExperimentPhase(phase: 1, spec: spec, reason: "r", startedAt: 0, endedAt: 86_400_000)
        var rng = SplitMix64(seed: 5)
        var data = ExperimentData()
        for index in 0..<1_200 {
            let arm = index % 2 == 0 ? "control" : "treatment"
            var tally = UserTally(arm: arm)
            tally.exposures = 3
            tally.prePlays = Double(index % 30)
            tally.plays = Double(3 + rng.below(4) + (arm == "treatment" ? 1 : 0))
            let heavy = tally.prePlays >= 20
            tally.skips = Double(rng.below(3) + (arm == "treatment" && heavy ? 6 : 0))
            var explored = UserExploration()
            explored.itemPlays = ["t\(rng.below(50))": Int(tally.plays)]
            explored.feedbackTimes = [1_000, 60_000, 4_000_000]
            explored.preGenres = [index % 3 == 0 ? "jazz" : "rock": 2]
            data.users["u\(index)"] = tally
            data.exploration["u\(index)"] = explored
        }
        let report = ExperimentAnalyzer.analyze(record: record, phase: phase, data: data, incidents: [], excludeIncidents: true)
        let exploratory = try! #require(report.exploratory)
        #expect(exploratory.contains { $0.segment == "top genre: rock" } && exploratory.contains { $0.metric == "session_minutes" })
        let flagged = exploratory.filter(\.surprise)
        #expect(flagged.contains { $0.metric == "skips_per_user" && $0.segment == "activity: high" })
        #expect(!flagged.contains { $0.metric == "skips_per_user" && $0.segment == "activity: low" }, "light users were not harmed")
        #expect(exploratory.allSatisfy { $0.qValue >= $0.pValue })
        #expect(report.recommendation == .ship, "exploratory results never drive the recommendation")
        #expect(!report.reasons.contains { $0.contains("skips") })
        #expect(AnalysisReportHTML.render(report, hash: "h").contains("flagged for review"))
    }
}
