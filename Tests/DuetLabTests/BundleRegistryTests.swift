import DuetCore
import DuetLab
import DuetStore
import DuetLabTestSupport
import DuetStoreTestSupport
import DuetTestSupport
import DuetTraining
import Foundation
import Testing

@Suite struct BundleRegistryTests {
    @Test func bundleRoundTripsAndEveryFlippedByteIsRefusedByName() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let bundle = try await fixture.lab.openBundle(fixture.first)
            #expect(bundle.id == fixture.first)
            #expect(bundle.dimension == 8)
            #expect(bundle.userFactors.count == bundle.userCount * 8)
            #expect(bundle.catalog.count == bundle.itemCount)
            let user = try #require(bundle.userIndex(of: bundle.userIDs[5]))
            #expect(user == 5)

            for name in bundle.manifest.files.keys.sorted() + [BundleFiles.manifest] {
                let copy = folder.appendingPathComponent("copy-\(name)").appendingPathComponent(fixture.first)
                try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: fixture.lab.bundleFolder(fixture.first), to: copy)
                let target = copy.appendingPathComponent(name)
                var data = try Data(contentsOf: target)
                data[data.count / 2] ^= 0x20
                try data.write(to: target)
                #expect { try ModelBundle(folder: copy) } throws: { error in
                    "\(error)".contains(name)
                }
            }
        }
    }

    @Test func promotionNeedsEvidenceAndRollbackKeepsHistory() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let registry = fixture.lab.registry
            await #expect { try await registry.promote(fixture.first, actor: "ana", reason: "try", evidence: .rules, expectedGeneration: nil) } throws: {
                "\($0)".contains("has no offline evaluation")
            }
            let (comparison, evaluation) = try await fixture.lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
            #expect(evaluation != nil)
            #expect(comparison.differences.contains { $0.metric == "ndcg@10" })
            let first = try await registry.promote(fixture.first, actor: "ana", reason: "beats popularity", evidence: .rules, expectedGeneration: 0)
            #expect(first.generation == 1 && first.evaluationID == evaluation)

            // A second model needs an evaluation against production and a ship decision.
            _ = try await fixture.lab.evaluate(candidate: fixture.second, baseline: "production", resamples: 200)
            await #expect { try await registry.promote(fixture.second, actor: "ana", reason: "x", evidence: .rules, expectedGeneration: nil) } throws: {
                "\($0)".contains("no recorded decision")
            }
            let second = try await registry.promote(fixture.second, actor: "ana", reason: "hotfix", evidence: .override(reason: "urgent fix"), expectedGeneration: 1)
            #expect(second.generation == 2 && second.overrideReason == "urgent fix")
            let back = try await registry.rollback(to: nil, actor: "bo", reason: "regression", expectedGeneration: 2)
            #expect(back.generation == 3 && back.to == fixture.first && back.action == .rollback)
            let history = try await registry.history()
            #expect(history.map(\.generation) == [1, 2, 3])
            #expect(history.map(\.reason) == ["beats popularity", "hotfix", "regression"])
            #expect(try await registry.production().model == fixture.first)
            #expect(try await registry.model(fixture.second)?.status == .retired)
        }
    }

    @Test func concurrentPromotersCannotCorruptTheAlias() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let registry = fixture.lab.registry
            try await registry.promote(fixture.first, actor: "a", reason: "r", evidence: .override(reason: "setup"), expectedGeneration: 0)
            // Both read generation 1, then race.
            let second = fixture.second
            let promoter = Task { try await registry.promote(second, actor: "a", reason: "r", evidence: .override(reason: "race"), expectedGeneration: 1) }
            let other = Task { try await registry.promote(second, actor: "b", reason: "r", evidence: .override(reason: "race"), expectedGeneration: 1) }
            let results = [await promoter.result, await other.result]
            let failures = results.compactMap { result -> String? in if case let .failure(error) = result { return "\(error)" }; return nil }
            #expect(results.filter { if case .success = $0 { true } else { false } }.count == 1)
            #expect(failures.count == 1)
            #expect(failures.allSatisfy { $0.contains("moved to generation") }, "the loser gets a clear conflict: \(failures)")
            let generations = try await registry.history().map(\.generation)
            #expect(generations == Array(1...generations.count))
        }
    }

    /// Serve's source is a read-only SQLite connection: a write issued on it, past the type that has
    /// no write method, is refused by SQLite itself.
    @Test func servingSourceConnectionRefusesWrites() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let source = try SQLiteServingSource(path: fixture.lab.home.registryPath.path)
            #expect(try await source.servingConfiguration().production == nil)
            await #expect { try await source.executeOnServingConnection("UPDATE serving_state SET version = 99") } throws: {
                databaseRefusal($0).contains("readonly")
            }
            #expect(try await source.servingVersion() == 0)
            #expect(try await fixture.lab.registry.models().count == 2)
        }
    }
}

