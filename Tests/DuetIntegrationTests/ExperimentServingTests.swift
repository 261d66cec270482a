import DuetCore
import DuetLab
import DuetServe
import DuetStore
import DuetLabTestSupport
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
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
            let replies = try await app.test(.router) { client in
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
            try await app.test(.router) { client in
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
}
