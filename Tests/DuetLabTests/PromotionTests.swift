import DuetCore
import DuetLab
import DuetStore
import DuetLabTestSupport
import DuetTestSupport
import DuetTraining
import Foundation
import Testing

/// `Lab.promote`'s own checks, beyond the registry's rules: the bundle verifies, the evaluation is
/// not significantly worse on the primary metric, and evidence is no older than allowed.
@Suite struct PromotionTests {
    /// Stores a copy of `candidate`'s newest evaluation in which ndcg differs by `difference` and every
    /// other metric shows no clear difference.
    static func addEvaluation(_ lab: Lab, candidate: String, ndcgDifference difference: (Double, Double, Double)) async throws {
        let newest = try #require(try await lab.registry.evaluations(candidate: candidate).last)
        var comparison = try JSONDecoder().decode(OfflineComparison.self, from: Data(newest.metricsJSON.utf8))
        #expect(comparison.differences.contains { $0.metric.hasPrefix("ndcg@") })
        for index in comparison.differences.indices {
            let ndcg = comparison.differences[index].metric.hasPrefix("ndcg@")
            (comparison.differences[index].difference, comparison.differences[index].lower, comparison.differences[index].upper) =
                ndcg ? difference : (0, -1, 1)
        }
        var record = newest
        record.id = nil
        record.metricsJSON = String(decoding: try JSONEncoder().encode(comparison), as: UTF8.self)
        try await lab.registry.add(record)
    }

    @Test func significantlyWorseOnThePrimaryMetricIsRefusedUnlessOverridden() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
            try await Self.addEvaluation(lab, candidate: fixture.first, ndcgDifference: (-0.05, -0.08, -0.02))
            await #expect { try await lab.promote(fixture.first, actor: "ana", reason: "r") } throws: {
                "\($0)".contains("significantly worse") && "\($0)".contains("ndcg@10")
            }
            #expect(try await lab.registry.history().isEmpty)
            await #expect { try await lab.promote(fixture.first, actor: "ana", reason: "r", policy: PromotionPolicy(primaryMetric: "clicks")) } throws: {
                "\($0)".contains("'clicks' is not one of")
            }
            // Another metric can be the primary one, and there this evaluation shows no clear difference.
            let byPrecision = try await lab.promote(fixture.first, actor: "ana", reason: "r", policy: PromotionPolicy(primaryMetric: "precision"))
            #expect(byPrecision.generation == 1)
        }
    }

    @Test func worseWithinNoiseIsAccepted() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
            try await Self.addEvaluation(lab, candidate: fixture.first, ndcgDifference: (-0.01, -0.03, 0.01))
            let change = try await lab.promote(fixture.first, actor: "ana", reason: "r")
            #expect(change.generation == 1 && change.evaluationID != nil)
        }
    }

    @Test func evidenceOlderThanTheLimitIsRefused() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
            let policy = PromotionPolicy(maxEvidenceAge: .seconds(3_600))
            await #expect { try await lab.promote(fixture.first, actor: "ana", reason: "r", policy: policy, now: Date().addingTimeInterval(7_200)) } throws: {
                "\($0)".contains("older than the 1.0 h")
            }
            #expect(try await lab.registry.history().isEmpty)
            let change = try await lab.promote(fixture.first, actor: "ana", reason: "r", policy: policy)
            #expect(change.evaluationID != nil)
        }
    }

    @Test func overrideStillVerifiesTheBundleAndIsRecorded() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let popularity = try lab.bundleFolder(fixture.second).appendingPathComponent(BundleFiles.popularity)
            var bytes = try Data(contentsOf: popularity)
            bytes[0] ^= 0x01
            try bytes.write(to: popularity)
            await #expect { try await lab.promote(fixture.second, actor: "ana", reason: "r", override: "urgent") } throws: {
                "\($0)".contains(BundleFiles.popularity)
            }
            let change = try await lab.promote(fixture.first, actor: "ana", reason: "r", override: "no time to evaluate")
            #expect(change.overrideReason == "no time to evaluate" && change.evaluationID == nil)
            await #expect { try await lab.promote(String(fixture.first.prefix(10)), actor: "ana", reason: "again", override: "x") } throws: {
                "\($0)".contains("already in production")
            }
        }
    }

    @Test func rejectionLineageAndEvaluationReportsAreRecorded() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            // A rejected candidate can never be promoted, not even by override.
            #expect(try await lab.reject(String(fixture.second.prefix(12))) == fixture.second)
            #expect(try await lab.registry.model(fixture.second)?.status == .rejected)
            await #expect { try await lab.promote(fixture.second, actor: "ana", reason: "r", override: "x") } throws: { "\($0)".contains("was rejected") }

            // A retrained model names the bundle it descends from.
            var als = ALSConfiguration()
            als.factors = 6
            als.iterations = 2
            let child = try await lab.train(snapshot: "latest", split: fixture.split, algorithm: .als(als), name: "child", register: true,
                                            parent: fixture.first).bundleID
            #expect(try await lab.registry.model(child)?.parent == fixture.first)
            await #expect { try await lab.train(snapshot: "latest", split: fixture.split, algorithm: .als(als), name: "orphan", register: false,
                                                parent: fixture.first) } throws: { "\($0)".contains("--register") }

            // The evaluation's report file holds the comparison the registry stores.
            let (comparison, id) = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
            let record = try #require(try await lab.registry.evaluations(candidate: fixture.first).first { $0.id == id })
            let path = try #require(record.reportPath)
            let written = try JSONDecoder().decode(OfflineComparison.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(written.differences == comparison.differences && written.candidate == fixture.first)
            #expect(Data(record.metricsJSON.utf8) == (try Data(contentsOf: URL(fileURLWithPath: path))))
        }
    }
}
