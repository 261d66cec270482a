import DuetCore
import DuetLab
import DuetServe
import DuetStore
import DuetLabTestSupport
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import Logging
import Testing

struct ArmReply: Decodable {
    var experimentId: String
    var assigned: String
    var served: String
    var fallbackReason: String?
}

struct ExperimentReply: Decodable {
    var bundle: String
    var experiments: [ArmReply]
}

@Suite(.serialized) struct ExperimentServingTests {
    static func experiment(_ fixture: LabFixture, id: String = "exp") -> ExperimentSpec {
        ExperimentSpec(id: id, hypothesis: "second is better",
                       arms: [ExperimentArm(name: "control", bundleID: fixture.first, weight: 0.5),
                              ExperimentArm(name: "treatment", bundleID: fixture.second, weight: 0.5)],
                       successMetrics: ["plays_per_user"], guardrails: [GuardrailMetric(metric: "skip_rate", margin: 0.05)])
    }

    /// A deliberate assignment bug for the analysis to catch (sample-ratio mismatch): a share of the
    /// users hashed to a treatment of `experiment` are recorded and served as control.
    struct SkewedAssigner: ArmAssigner {
        var experiment: String
        var share: Double

        func arm(for user: String, in spec: ExperimentSpec) -> ExperimentArm? {
            guard let arm = spec.assignedArm(for: user) else { return nil }
            let skewed = spec.id == experiment && arm.name != spec.control.name
                && Double(Assignment.fnv1a32("skew" + user) % 10_000) / 10_000 < share
            return skewed ? spec.control : arm
        }
    }

    static func serve(_ fixture: LabFixture, assigner: any ArmAssigner = HashedArmAssigner()) async throws -> (Application<RouterResponder<ServeRequestContext>>, ServeComponents, SQLiteEventLog) {
        var configuration = ServeSettings(home: fixture.lab.home)
        configuration.assigner = assigner
        let log = try SQLiteEventLog(path: fixture.lab.home.eventLogPath.path)
        let (router, components) = try await buildServe(configuration: configuration,
                                                        source: try SQLiteServingSource(path: fixture.lab.home.registryPath.path),
                                                        eventSink: log, prometheus: nil, logger: Logger(label: "test"))
        return (Application(router: router), components, log)
    }

    @Test func unreadableTreatmentIsServedAsControlAndFlagged() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            try await fixture.lab.registry.promote(fixture.first, actor: "t", reason: "setup", evidence: .override(reason: "test"), expectedGeneration: 0)
            let (app, components, log) = try await Self.serve(fixture)
            try await fixture.lab.createExperiment(Self.experiment(fixture))
            // Damaged after the Lab verified it.
            let file = try fixture.lab.bundleFolder(fixture.second).appendingPathComponent(BundleFiles.userFactors)
            var bytes = try Data(contentsOf: file)
            bytes[0] ^= 0x7F
            try bytes.write(to: file)
            try await fixture.lab.registry.start(experiment: "exp")
            let swapped = await components.reloader.reloadIfChanged()
            #expect(swapped, "the experiment starts even though one arm is refused")
            let replies = try await app.test(.inProcess) { client in
                var replies: [ExperimentReply] = []
                for user in 0..<120 {
                    let response = try await client.execute(uri: "/v1/users/u\(user)/recommendations?n=5", method: .get)
                    #expect(response.status == .ok)
                    replies.append(try JSONDecoder().decode(ExperimentReply.self, from: Data(response.body.readableBytesView)))
                }
                return replies
            }
            let treated = replies.filter { $0.experiments.first?.assigned == "treatment" }
            #expect(treated.count > 30)
            #expect(treated.allSatisfy { $0.experiments[0].served == "control" && $0.experiments[0].fallbackReason == "treatment-bundle-unavailable" })
            #expect(replies.allSatisfy { $0.bundle == fixture.first })
            while components.exposures.pending > 0 { await components.exposures.flush() }
            try await fixture.lab.registry.stop(experiment: "exp")
            let analysis = try await fixture.lab.analyze(experiment: "exp", eventLog: log)
            let treatmentArm = try #require(analysis.report.arms.first { $0.arm == "treatment" })
            #expect(treatmentArm.fallbackExposures == treatmentArm.exposures)
            #expect(analysis.report.recommendation != .ship)
            #expect(analysis.report.reasons.contains { $0.contains("served by fallback") })
        }
    }

    @Test func skewedAssignmentIsCaughtBySampleRatioMismatch() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            try await fixture.lab.registry.promote(fixture.first, actor: "t", reason: "setup", evidence: .override(reason: "test"), expectedGeneration: 0)
            let (app, components, log) = try await Self.serve(fixture, assigner: SkewedAssigner(experiment: "exp", share: 0.35))
            try await fixture.lab.createExperiment(Self.experiment(fixture))
            try await fixture.lab.registry.start(experiment: "exp")
            await components.reloader.reloadIfChanged()
            try await app.test(.inProcess) { client in
                for user in 0..<300 {
                    let response = try await client.execute(uri: "/v1/users/u\(user)/recommendations?n=3", method: .get)
                    #expect(response.status == .ok)
                }
            }
            while components.exposures.pending > 0 { await components.exposures.flush() }
            try await fixture.lab.registry.stop(experiment: "exp")
            let report = try await fixture.lab.analyze(experiment: "exp", eventLog: log).report
            #expect(report.srm.detected, "χ² = \(report.srm.chiSquared), p = \(report.srm.pValue), arms \(report.arms.map(\.users))")
            #expect(report.recommendation == .inconclusive)
            #expect(report.reasons.first?.contains("sample ratio mismatch") == true)
        }
    }

    /// A holdout keeps its slice on the pinned bundle through a launch and out of every experiment;
    /// everyone else gets the new production and the experiments, and both sides are recorded.
    @Test func aHoldoutKeepsItsSliceOnThePinnedBundleAndOutOfExperiments() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            try await lab.registry.promote(fixture.first, actor: "t", reason: "setup", evidence: .override(reason: "test"), expectedGeneration: 0)
            let holdout = try await lab.createHoldout(id: "hold", hypothesis: "launches help", share: 0.3, days: 30, successMetrics: ["plays_per_user"])
            #expect(holdout.control.bundleID == fixture.first && holdout.isHoldout && holdout.plannedEnd != nil)
            try await lab.start(experiment: "hold")
            var test = Self.experiment(fixture)
            test.approvalsRequired = 0
            try await lab.createExperiment(test)
            try await lab.start(experiment: "exp")
            // The launch: production moves to the second bundle.
            try await lab.registry.promote(fixture.second, actor: "t", reason: "launch", evidence: .override(reason: "test"), expectedGeneration: 1)
            let (app, components, log) = try await Self.serve(fixture)
            _ = await components.reloader.reloadIfChanged()
            let replies = try await app.test(.inProcess) { client in
                var replies: [(String, ExperimentReply)] = []
                for user in 0..<300 {
                    let response = try await client.execute(uri: "/v1/users/u\(user)/recommendations?n=5", method: .get)
                    #expect(response.status == .ok)
                    replies.append(("u\(user)", try JSONDecoder().decode(ExperimentReply.self, from: Data(response.body.readableBytesView))))
                }
                return replies
            }
            var heldOut = 0
            for (user, reply) in replies {
                let slice = holdout.assignedArm(for: user)?.name
                if slice == "holdout" {
                    heldOut += 1
                    #expect(reply.bundle == fixture.first, "\(user) is held out, yet got \(reply.bundle.prefix(8))")
                    #expect(reply.experiments.map(\.experimentId) == ["hold"], "a held-out user joins no experiment")
                    #expect(reply.experiments.first?.served == "holdout")
                } else {
                    #expect(reply.experiments.first { $0.experimentId == "hold" }?.served == "launches")
                    let arm = try #require(reply.experiments.first { $0.experimentId == "exp" })
                    #expect(reply.bundle == (arm.served == "control" ? fixture.first : fixture.second))
                }
            }
            #expect((60...120).contains(heldOut), "30% of 300 users, give or take: \(heldOut)")
            while components.exposures.pending > 0 { await components.exposures.flush() }
            try await lab.stop(experiment: "hold")
            let report = try await lab.analyze(experiment: "hold", eventLog: log).report
            #expect(report.arms.map(\.arm) == ["holdout", "launches"])
            #expect(report.arms[0].exposures == heldOut && report.arms[1].exposures == 300 - heldOut)
            #expect(report.kind == "holdout" && report.textLines.contains { $0.contains("'launches' against 'holdout' is what every launch since it began did together") })
        }
    }
}
