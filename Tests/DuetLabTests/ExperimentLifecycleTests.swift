import DuetCore
import DuetLab
import DuetStore
import DuetLabTestSupport
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Testing

@Suite struct ExperimentLifecycleTests {
    static func spec(_ fixture: LabFixture) -> ExperimentSpec {
        ExperimentSpec(id: "exp", hypothesis: "h",
                       arms: [ExperimentArm(name: "control", bundleID: fixture.first, weight: 0.5),
                              ExperimentArm(name: "treatment", bundleID: fixture.second, weight: 0.5)],
                       seed: "exp", successMetrics: ["plays_per_user"])
    }

    static func traffic(_ log: SQLiteEventLog, spec: ExperimentSpec, phase: Int, users: Range<Int>, at time: EpochMillis) async throws {
        try await LabFixture.traffic(log, spec: spec, phase: phase, users: users, at: time)
    }

    @Test func phasesAreAnalysedSeparatelyAndIncidentsExcluded() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            var spec = Self.spec(fixture)
            try await lab.createExperiment(spec)
            await #expect { try await lab.analyze(experiment: "exp", eventLog: log) } throws: { "\($0)".contains("has not started") }
            try await lab.registry.start(experiment: "exp")
            let start = Date().epochMillis
            try await Self.traffic(log, spec: spec, phase: 1, users: 0..<200, at: start + 5)

            spec.arms[0].weight = 0.8
            spec.arms[1].weight = 0.2
            try await lab.registry.changePhase(of: "exp", to: spec, reason: "ramp down treatment")
            try await Task.sleep(for: .milliseconds(20))
            try await Self.traffic(log, spec: spec, phase: 2, users: 200..<300, at: Date().epochMillis + 5)
            let phases = try await lab.registry.phases(of: "exp")
            #expect(phases.map(\.phase) == [1, 2] && phases[1].reason == "ramp down treatment")

            let first = try await lab.analyze(experiment: "exp", phase: 1, eventLog: log).report
            let second = try await lab.analyze(experiment: "exp", phase: 2, eventLog: log).report
            #expect(first.arms.reduce(0) { $0 + $1.users } == 200)
            #expect(second.arms.reduce(0) { $0 + $1.users } == 100)
            #expect(second.srm.expectedShares == [0.8, 0.2])
            let plays = try #require(first.metrics.first { $0.metric == "plays_per_user" })
            #expect(plays.verdict == "better")
            #expect(first.recommendation == .ship)

            // An incident over phase 1's traffic: its exposures leave the analysis, and it says so.
            try await lab.registry.add(Incident(from: start, until: start + 1_000, reason: "cache outage", createdAt: Date().epochMillis))
            let excluded = try await lab.analyze(experiment: "exp", phase: 1, eventLog: log).report
            #expect(excluded.excludedExposures == 200)
            #expect(excluded.incidents.contains { $0.contains("cache outage") && $0.contains("excluded") })
            let included = try await lab.analyze(experiment: "exp", phase: 1, excludeIncidents: false, eventLog: log).report
            #expect(included.excludedExposures == 0 && included.incidents.contains { $0.contains("included") })
        }
    }

    @Test func decisionsRestOnAnAnalysisAndFollowItsRecommendation() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            try await lab.createExperiment(Self.spec(fixture))
            try await lab.registry.start(experiment: "exp")
            await #expect { try await lab.decide(experiment: "exp", outcome: .ship, arm: nil, reviewer: "ana", reason: "r", overrideReason: nil) } throws: {
                "\($0)".contains("no analysis yet")
            }
            try await Self.traffic(log, spec: Self.spec(fixture), phase: 1, users: 0..<200, at: Date().epochMillis + 5)
            try await lab.registry.stop(experiment: "exp")
            let analysis = try await lab.analyze(experiment: "exp", eventLog: log)
            #expect(analysis.report.recommendation == .ship)
            #expect(FileManager.default.fileExists(atPath: analysis.htmlPath.path))
            await #expect { try await lab.decide(experiment: "exp", outcome: .noShip, arm: nil, reviewer: "ana", reason: "r", overrideReason: nil) } throws: {
                "\($0)".contains("needs --override")
            }
            // Two approvals of this analysis are needed (the default); the approval must name the newest analysis.
            await #expect { try await lab.decide(experiment: "exp", outcome: .ship, arm: nil, reviewer: "ana", reason: "plays up", overrideReason: nil) } throws: {
                "\($0)".contains("needs 2 approvals of analysis \(analysis.hash.prefix(16)); it has 0")
            }
            await #expect { try await lab.approve("exp", as: "bob", analysis: "0123456789ab") } throws: { "\($0)".contains("but the newest is") }
            try await lab.approve("exp", as: "bob", analysis: String(analysis.hash.prefix(12)))
            try await lab.approve("exp", as: "dave", analysis: analysis.hash)
            #expect(try await lab.registry.experiment("exp")?.spec.status == .inReview)
            let (id, decision) = try await lab.decide(experiment: "exp", outcome: .ship, arm: nil, reviewer: "ana", reason: "plays up", overrideReason: nil)
            #expect(decision.approvers == ["bob", "dave"])
            #expect(decision.arm == "treatment" && decision.analysisHash == analysis.hash)
            let stored = try await lab.registry.decisions(experiment: "exp")
            #expect(stored.map(\.id) == [id])
            #expect(try await lab.registry.experiment("exp")?.spec.status == .decided)

            // The decision plus an offline evaluation lets the treatment through the promotion rules.
            try await lab.registry.promote(fixture.first, actor: "t", reason: "setup", evidence: .override(reason: "first"), expectedGeneration: 0)
            _ = try await lab.evaluate(candidate: fixture.second, baseline: "production", resamples: 200)
            let change = try await lab.registry.promote(fixture.second, actor: "ana", reason: "shipped", evidence: .rules, expectedGeneration: 1)
            #expect(change.decisionID == id)

            // The memory sets the offline evaluation of treatment vs control beside the online lift.
            let remembered = try #require(try await lab.experimentMemory().first { $0.id == "exp" })
            let offline = try #require(remembered.offline.first { $0.metric.hasPrefix("ndcg@") })
            let evaluation = try #require(try await lab.registry.evaluations(candidate: fixture.second).last)
            #expect(offline.arm == "treatment" && offline.evaluation == evaluation.id)
            let online = try #require(remembered.online.first { $0.metric == "plays_per_user" })
            #expect(online.relative && online.lift > 0 && online.lower <= online.lift && online.lift <= online.upper && online.verdict == "better")
            #expect(remembered.decision?.approvers == ["bob", "dave"] && remembered.decision?.promotedAs == 2)
            #expect(remembered.analysis == analysis.hash && remembered.chartPoint?.online == online.lift)
            #expect(try await lab.experimentMemory(metric: "plays_per_user").map(\.id) == ["exp"])
            #expect(try await lab.experimentMemory(metric: "skip_rate").isEmpty)
            #expect(try await lab.experimentMemory(model: String(fixture.second.prefix(10))).map(\.id) == ["exp"])
            #expect(try await lab.experimentMemory(model: "second").map(\.id) == ["exp"], "by model name")
            #expect(try await lab.experimentMemory(owner: "nobody").isEmpty)
        }
    }
}
