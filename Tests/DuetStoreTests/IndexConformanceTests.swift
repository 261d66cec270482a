import DuetCore
import DuetStore
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Testing

/// Similarity indexes on every backend: artefacts registered once, each name its own alias with its
/// own generation and append-only history, and none of it moving production.
@Suite struct IndexConformanceTests {
    static func artefact(_ name: String, _ tag: Character, by person: String = "chen") -> IndexArtefactRecord {
        let manifest = IndexManifest(name: name, kind: .hnsw, metric: "cosine", dimension: 8, itemCount: 10,
                                     source: IndexSource(algorithm: "als", bundle: "b"), parameters: ["m": .int(16)],
                                     quality: IndexQuality(recallAt10: 0.99, queries: 10, ef: 64), createdAt: 1,
                                     files: [IndexFiles.graph: BundleFile(sha256: String(repeating: "a", count: 64), bytes: 1),
                                             IndexFiles.itemIDs: BundleFile(sha256: String(repeating: "b", count: 64), bytes: 1)])
        return IndexArtefactRecord(id: String(repeating: tag, count: 64), manifest: manifest, registeredBy: person, registeredAt: 1)
    }

    static func publication(_ name: String, _ artefact: Character?, generation: Int? = nil) -> RegistryRules.IndexPublication {
        .init(name: name, artefact: artefact.map { String(repeating: $0, count: 64) }, actor: "chen", reason: "test", expectedGeneration: generation)
    }

    @Test(arguments: StoreBackend.enabled)
    func eachNameHasItsOwnGenerationHistoryAndRollback(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            await #expect { try await registry.register(Self.artefact("tracks/als", "1")) } throws: { "\($0)".contains("nobody named 'chen'") }
            try await registry.add(Person(name: "chen", team: "search", contact: "chen@example.com", createdAt: 1))
            for (name, tag) in [("tracks/als", Character("1")), ("tracks/als", "2"), ("artists/knn", "3")] {
                try await registry.register(Self.artefact(name, tag))
            }
            await #expect { try await registry.register(Self.artefact("tracks/als", "1")) } throws: { "\($0)".contains("already registered") }
            #expect(try await registry.indexArtefacts().count == 3)

            // Refusals: an unknown artefact, another name's artefact, a stale generation, nothing to roll back.
            await #expect { try await registry.publish(Self.publication("tracks/als", "9")) } throws: { "\($0)".contains("no index artefact named") }
            await #expect { try await registry.publish(Self.publication("tracks/als", "3")) } throws: { "\($0)".contains("built as 'artists/knn'") }
            await #expect { try await registry.rollbackIndex(Self.publication("tracks/als", nil)) } throws: { "\($0)".contains("never published") }

            let version = try await registry.servingVersion()
            let first = try await registry.publish(Self.publication("tracks/als", "1", generation: 0))
            #expect(first.generation == 1 && first.from == nil && first.action == .publish)
            #expect(try await registry.servingVersion() > version, "Serve must see the change")
            await #expect { try await registry.publish(Self.publication("tracks/als", "1")) } throws: { "\($0)".contains("already serves") }
            await #expect { try await registry.rollbackIndex(Self.publication("tracks/als", nil)) } throws: { "\($0)".contains("first publication") }
            try await registry.publish(Self.publication("artists/knn", "3"))
            let second = try await registry.publish(Self.publication("tracks/als", "2", generation: 1))
            #expect(second.generation == 2 && second.from == String(repeating: "1", count: 64))
            await #expect { try await registry.publish(Self.publication("tracks/als", "1", generation: 1)) } throws: { "\($0)".contains("moved to generation 2") }

            var configuration = try await registry.servingConfiguration()
            #expect(configuration.indexes == [PublishedIndex(name: "artists/knn", artefact: String(repeating: "3", count: 64), generation: 1),
                                              PublishedIndex(name: "tracks/als", artefact: String(repeating: "2", count: 64), generation: 2)])
            #expect(configuration.production == nil && configuration.productionGeneration == 0, "publishing an index never moves production")

            let back = try await registry.rollbackIndex(Self.publication("tracks/als", nil))
            #expect(back.generation == 3 && back.action == .rollback && back.to == String(repeating: "1", count: 64))
            await #expect { try await registry.rollbackIndex(Self.publication("tracks/als", "3")) } throws: { "\($0)".contains("never served as 'tracks/als'") }
            let forward = try await registry.rollbackIndex(Self.publication("tracks/als", "2"))
            #expect(forward.generation == 4 && forward.to == String(repeating: "2", count: 64))
            configuration = try await registry.servingConfiguration()
            #expect(configuration.indexes.first { $0.name == "artists/knn" }?.generation == 1, "one name's changes leave the others alone")
            #expect(try await registry.indexHistory("tracks/als").map(\.generation) == [1, 2, 3, 4])
            #expect(try await registry.indexHistory(nil).count == 5)

            for sql in ["UPDATE index_history SET reason = 'edited'", "DELETE FROM index_history",
                        "UPDATE index_artefacts SET manifest = '{}'", "DELETE FROM index_artefacts"] {
                await #expect("\(sql)") { try await stores.executeOnLabRegistry(sql) } throws: { databaseRefusal($0).contains("append-only") }
            }
        }
    }

    @Test func namesAreCheckedBeforeAnythingIsStored() throws {
        for good in ["tracks/als-64", "artists/knn", "a", "podcasts/en/item-knn.v2"] { #expect(throws: Never.self) { try IndexName.validate(good) } }
        for bad in ["", "Tracks/als", "tracks//als", "/tracks", "tracks/", "../etc", "a/b/c/d/e", "tracks/als 64", "-x"] {
            #expect(throws: DuetError.self, "\(bad)") { try IndexName.validate(bad) }
        }
    }
}
