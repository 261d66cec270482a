import DuetCore
import DuetLab
import DuetLabTestSupport
import DuetServe
import DuetSimilarity
import DuetStore
import DuetTestSupport
import DuetTraining
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import Testing

/// Similarity indexes served under their own names, beside the recommender: each answer names its
/// artefact and the name's generation; republishing one name moves nothing else; a corrupt artefact
/// is refused by Serve, which keeps what it had.
@Suite struct IndexServingTests {
    struct Answer: Decodable {
        var item: String
        var index: String
        var artefact: String
        var generation: Int
        var filters: [String]
        var items: [RecommendedItem]
    }

    static func answer(_ client: HTTPTestClient, _ uri: String) async throws -> Answer {
        try await client.execute(uri: uri, method: .get) { response in
            #expect(response.status == .ok, "\(uri): \(String(buffer: response.body))")
            return try JSONDecoder().decode(Answer.self, from: Data(response.body.readableBytesView))
        }
    }

    @Test func namedIndexesServeBesideTheRecommenderAndSwapOneAtATime() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let lab = fixture.lab.lab, reloader = fixture.components.reloader, store = fixture.components.store
            let snapshot = try #require(try await lab.registry.model(fixture.lab.first)).snapshot
            let graph = try await lab.buildIndex(name: "tracks/similar", from: .bundle(fixture.lab.first, .hnsw(HNSWParameters(m: 12, efConstruction: 80))),
                                                 actor: "ana")
            #expect(graph.manifest.kind == .hnsw && (graph.manifest.quality?.recallAt10 ?? 0) > 0.9)
            var knnConfiguration = ItemKNNConfiguration()
            knnConfiguration.neighbours = 30
            let lists = try await lab.buildIndex(name: "tracks/co-played", from: .itemKNN(snapshot: snapshot, knnConfiguration), actor: "ana")
            #expect(lists.manifest.kind == .neighbours && lists.manifest.source.snapshot == snapshot)
            try await lab.publishIndex("tracks/similar", artefact: graph.id, actor: "ana", reason: "first graph")
            try await lab.publishIndex("tracks/co-played", artefact: lists.id, actor: "ana", reason: "first lists")
            #expect(await reloader.reloadIfChanged())
            #expect(store.current.generation == 1, "publishing indexes never moves the recommender")

            let knnArtefact = try await lab.openIndex("tracks/co-played")
            let knnItem = try #require(knnArtefact.itemIDs.first { (knnArtefact.similar(to: $0, n: 5)?.count ?? 0) >= 3 })
            let graphArtefact = try await lab.openIndex("tracks/similar")
            let next = try await lab.buildIndex(name: "tracks/similar", from: .bundle(fixture.lab.second, .hnsw(HNSWParameters(m: 12, efConstruction: 80))),
                                                actor: "ana")
            try await fixture.app.test(.inProcess) { client in
                let first = try await Self.answer(client, "/v1/similar/tracks/similar/items/t1?n=5")
                #expect(first.artefact == graph.id && first.generation == 1 && first.index == "tracks/similar" && first.items.count == 5)
                #expect(!first.items.contains { $0.id == "t1" })
                // The same graph, read from the artefact, gives the same neighbours.
                #expect(first.items.map(\.id) == graphArtefact.similar(to: "t1", n: 5)?.map { graphArtefact.itemIDs[$0.id] })
                let encoded = try await Self.answer(client, "/v1/similar/tracks%2Fsimilar/items/t1?n=5")
                #expect(encoded.items.map(\.id) == first.items.map(\.id))
                let knn = try await Self.answer(client, "/v1/similar/tracks/co-played/items/\(knnItem)?n=5")
                #expect(knn.artefact == lists.id && knn.generation == 1 && !knn.items.isEmpty)
                #expect(knn.items.map(\.id) == knnArtefact.similar(to: knnItem, n: 5)?.map { knnArtefact.itemIDs[$0.id] })

                // Filters hold on every item; excluded ids never come back.
                let filtered = try await Self.answer(client, "/v1/similar/tracks/similar/items/t1?n=10&filter=explicit!=true&exclude=\(first.items[0].id)")
                #expect(filtered.filters == ["explicit!=true"] && !filtered.items.isEmpty)
                #expect(filtered.items.allSatisfy { graphArtefact.catalog[$0.id]?.attributes?["explicit"] == "false" })
                #expect(!filtered.items.contains { $0.id == first.items[0].id })

                // The production bundle's own route takes the same filters.
                try await client.execute(uri: "/v1/items/t1/similar?n=10&filter=explicit!=true", method: .get) { response in
                    #expect(response.status == .ok)
                    let items = try JSONDecoder().decode(SimilarItemsResponse.self, from: Data(response.body.readableBytesView)).items
                    #expect(!items.isEmpty && items.allSatisfy { graphArtefact.catalog[$0.id]?.attributes?["explicit"] == "false" })
                }

                for (uri, status) in [("/v1/similar/tracks/nowhere/items/t1", 404), ("/v1/similar/tracks/similar/items/t-unknown", 404),
                                      ("/v1/similar/Tracks/items/t1", 400), ("/v1/similar/a/b/c/d/e/items/t1", 400),
                                      ("/v1/similar/tracks/similar/t1", 404), ("/v1/similar/tracks/similar/items/t1?filter=explicit", 400),
                                      ("/v1/similar/tracks/similar/items/t1?n=0", 400)] {
                    try await client.execute(uri: uri, method: .get) { response in
                        #expect(response.status.code == status, "\(uri): \(String(buffer: response.body))")
                        #expect(String(buffer: response.body).contains("\"error\""), "\(uri) answers a JSON error")
                    }
                }
                try await client.execute(uri: "/v1/similar/tracks/similar/items/t1", method: .delete) { response in
                    #expect(response.status == .methodNotAllowed && response.headers[.allow] == "GET")
                }

                // Republish one name while requests run: every answer pairs an artefact with its own
                // generation, and the other name stays where it was.
                try await lab.publishIndex("tracks/similar", artefact: next.id, actor: "ana", reason: "retrained", expectedGeneration: 1)
                let answers = try await withThrowingTaskGroup(of: [Answer].self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            var seen: [Answer] = []
                            for _ in 0..<40 {
                                seen.append(try await Self.answer(client, "/v1/similar/tracks/similar/items/t1?n=5"))
                                seen.append(try await Self.answer(client, "/v1/similar/tracks/co-played/items/\(knnItem)?n=5"))
                            }
                            return seen
                        }
                    }
                    group.addTask {
                        #expect(await reloader.reloadIfChanged())
                        return []
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                let graphs = answers.filter { $0.index == "tracks/similar" }
                #expect(graphs.allSatisfy { ($0.artefact == graph.id && $0.generation == 1) || ($0.artefact == next.id && $0.generation == 2) })
                #expect(answers.filter { $0.index == "tracks/co-played" }.allSatisfy { $0.artefact == lists.id && $0.generation == 1 })
                let after = try await Self.answer(client, "/v1/similar/tracks/similar/items/t1?n=5")
                #expect(after.artefact == next.id && after.generation == 2)
                #expect(store.current.generation == 1)

                // A corrupt artefact reaches the registry without the Lab's check: Serve refuses it,
                // keeps serving generation 2, counts the refusal, and stays ready.
                let broken = try await lab.buildIndex(name: "tracks/similar", from: .bundle(fixture.lab.first, .hnsw(HNSWParameters(m: 8, efConstruction: 40))),
                                                      actor: "ana")
                let body = try lab.indexFolder(broken.id).appendingPathComponent(IndexFiles.graph)
                var bytes = try Data(contentsOf: body)
                bytes[bytes.count / 2] ^= 0xFF
                try bytes.write(to: body)
                await #expect(throws: (any Error).self) {
                    try await lab.publishIndex("tracks/similar", artefact: broken.id, actor: "ana", reason: "checked by the Lab")
                }
                try await lab.registry.publish(RegistryRules.IndexPublication(name: "tracks/similar", artefact: broken.id, actor: "ana",
                                                                              reason: "straight to the registry", expectedGeneration: 2))
                _ = await reloader.reloadIfChanged()
                let kept = try await Self.answer(client, "/v1/similar/tracks/similar/items/t1?n=5")
                #expect(kept.artefact == next.id && kept.generation == 2)
                try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("duet_index_refusals_total 1"))
                    #expect(text.contains(#"duet_index_generation{index="tracks/similar"} 2"#))
                    #expect(text.contains(#"duet_index_generation{index="tracks/co-played"} 1"#))
                }

                // One step back, through the Lab (which verifies the target): Serve follows.
                let back = try await lab.rollbackIndex("tracks/similar", actor: "ana", reason: "the last build was corrupt")
                #expect(back.to == next.id && back.generation == 4)
                #expect(await reloader.reloadIfChanged())
                let restored = try await Self.answer(client, "/v1/similar/tracks/similar/items/t1?n=5")
                #expect(restored.artefact == next.id && restored.generation == 4)
            }
        }
    }

    /// A name served for the first time answers before its graph is read whole: chunks are verified
    /// as they are first read, the rest in the background. A corrupt artefact published straight to
    /// the registry is found there, never answers from its bad chunk, and is withdrawn; a good one
    /// published after it serves again.
    @Test func anIndexServedFirstIsVerifiedInTheBackgroundAndWithdrawnWhenCorrupt() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let lab = fixture.lab.lab, reloader = fixture.components.reloader, store = fixture.components.store
            let parameters = HNSWParameters(m: 8, efConstruction: 40)
            let broken = try await lab.buildIndex(name: "tracks/similar", from: .bundle(fixture.lab.first, .hnsw(parameters)), actor: "ana")
            #expect(broken.manifest.graphChunkBytes == ChunkDigests.defaultChunkBytes && broken.manifest.files[IndexFiles.graphChunks] != nil)
            let body = try lab.indexFolder(broken.id).appendingPathComponent(IndexFiles.graph)
            var bytes = try Data(contentsOf: body)
            #expect(bytes.count > 2 * ChunkDigests.defaultChunkBytes, "the graph spans several chunks (\(bytes.count) bytes)")
            // A byte in the middle of the layer-0 records, which opening does not read.
            let (recordsStart, recordsEnd) = bytes.withUnsafeBytes {
                (Int($0.loadUnaligned(fromByteOffset: 88, as: UInt64.self)), Int($0.loadUnaligned(fromByteOffset: 96, as: UInt64.self)))
            }
            let damaged = (recordsStart + recordsEnd) / 2
            bytes[damaged] ^= 0xFF
            try bytes.write(to: body)
            let badChunk = damaged / ChunkDigests.defaultChunkBytes
            try await lab.registry.publish(RegistryRules.IndexPublication(name: "tracks/similar", artefact: broken.id, actor: "ana",
                                                                          reason: "straight to the registry", expectedGeneration: 0))
            #expect(await reloader.reloadIfChanged())
            let served = try #require(store.current.indexes["tracks/similar"])
            let pages = try #require(served.artefact.pages, "a graph with chunk digests is read in by chunks")
            try await fixture.app.test(.inProcess) { client in
                // Until it is withdrawn, an answer comes only from verified chunks, or is a 503.
                var withdrawn = false
                for _ in 0..<200 {
                    try await client.execute(uri: "/v1/similar/tracks/similar/items/t1?n=5", method: .get) { response in
                        #expect([200, 503, 404].contains(response.status.code), "\(String(buffer: response.body))")
                    }
                    _ = await reloader.reloadIfChanged()
                    if store.current.indexes["tracks/similar"] == nil {
                        withdrawn = true
                        break
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(withdrawn, "the background verification found the bad chunk within 10 s")
                #expect("\(try #require(pages.failure))".contains("chunk \(badChunk)"))
                try await client.execute(uri: "/v1/similar/tracks/similar/items/t1?n=5", method: .get) { response in
                    #expect(response.status == .notFound, "\(String(buffer: response.body))")
                }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(String(buffer: response.body).contains("duet_index_refusals_total 1"))
                }
                // The same artefact is not put back live; a good one is, and answers at once.
                let good = try await lab.buildIndex(name: "tracks/similar", from: .bundle(fixture.lab.second, .hnsw(parameters)), actor: "ana")
                try await lab.publishIndex("tracks/similar", artefact: good.id, actor: "ana", reason: "rebuilt", expectedGeneration: 1)
                #expect(await reloader.reloadIfChanged())
                let answer = try await Self.answer(client, "/v1/similar/tracks/similar/items/t1?n=5")
                #expect(answer.artefact == good.id && answer.generation == 2 && !answer.items.isEmpty)
                let goodPages = try #require(store.current.indexes["tracks/similar"]?.artefact.pages)
                for _ in 0..<200 where !goodPages.isComplete { try await Task.sleep(for: .milliseconds(50)) }
                #expect(goodPages.isComplete && goodPages.failure == nil)
            }
        }
    }

    /// Embeddings made elsewhere become an index artefact like any other: checked on the way in,
    /// bad input refused naming the problem with nothing registered, then published and served.
    @Test func externalEmbeddingsBuildAnIndexAndBadFilesAreRefused() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let lab = fixture.lab.lab
            let dimension = 8, count = 300
            var rng = SplitMix64(seed: 9)
            let rows = (0..<(count * dimension)).map { _ in Float(rng.gaussian()) }
            let vectors = folder.appendingPathComponent("embeddings.f32"), ids = folder.appendingPathComponent("ids.txt")
            try rows.withUnsafeBytes { try Data($0).write(to: vectors) }
            try (0..<count).map { "ext\($0)" }.joined(separator: "\n").write(to: ids, atomically: true, encoding: .utf8)
            let parameters = HNSWParameters(m: 8, efConstruction: 60)

            func refused(_ rows: URL, _ ids: URL, dimension: Int, mentions: String) async {
                await #expect { try await lab.buildIndex(name: "podcasts/content", from: .vectors(path: rows.path, ids: ids.path, dimension: dimension, .hnsw(parameters)),
                                                         actor: "ana") } throws: { "\($0)".contains(mentions) }
            }
            await refused(vectors, ids, dimension: 7, mentions: "not a whole number of 7-float rows")
            let short = folder.appendingPathComponent("short.txt")
            try (0..<(count - 1)).map { "ext\($0)" }.joined(separator: "\n").write(to: short, atomically: true, encoding: .utf8)
            await refused(vectors, short, dimension: dimension, mentions: "299 ids")
            let twice = folder.appendingPathComponent("twice.txt")
            try (0..<count).map { "ext\($0 == 5 ? 4 : $0)" }.joined(separator: "\n").write(to: twice, atomically: true, encoding: .utf8)
            await refused(vectors, twice, dimension: dimension, mentions: "appears twice")
            var poisoned = rows
            poisoned[3 * dimension + 2] = .nan
            let nan = folder.appendingPathComponent("nan.f32")
            try poisoned.withUnsafeBytes { try Data($0).write(to: nan) }
            await refused(nan, ids, dimension: dimension, mentions: "row 3 holds a value that is not a finite number")
            #expect(try await lab.registry.indexArtefacts().isEmpty, "nothing was registered by a refused build")

            let built = try await lab.buildIndex(name: "podcasts/content", from: .vectors(path: vectors.path, ids: ids.path, dimension: dimension, .hnsw(parameters)),
                                                 actor: "ana")
            #expect(built.manifest.source.algorithm == "vectors" && built.manifest.itemCount == count && built.manifest.dimension == dimension)
            #expect((built.manifest.quality?.recallAt10 ?? 0) > 0.9)
            try await lab.publishIndex("podcasts/content", artefact: built.id, actor: "ana", reason: "content embeddings")
            #expect(await fixture.components.reloader.reloadIfChanged())
            // The exact answer, computed here from the rows.
            func cosine(_ a: Int, _ b: Int) -> Float {
                let x = rows[(a * dimension)..<((a + 1) * dimension)], y = rows[(b * dimension)..<((b + 1) * dimension)]
                let dot = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
                return dot / (x.reduce(0) { $0 + $1 * $1 }.squareRoot() * y.reduce(0) { $0 + $1 * $1 }.squareRoot())
            }
            let truth = (1..<count).sorted { cosine(0, $0) > cosine(0, $1) }.prefix(5).map { "ext\($0)" }
            try await fixture.app.test(.inProcess) { client in
                let answer = try await Self.answer(client, "/v1/similar/podcasts/content/items/ext0?n=5")
                #expect(answer.artefact == built.id && answer.generation == 1)
                #expect(Set(answer.items.map(\.id)).intersection(truth).count >= 4, "\(answer.items.map(\.id)) vs exact \(truth)")
            }
        }
    }

    /// A partitioned index is an artefact like a graph: built with its recall measured, published,
    /// served by name, and refused when its file does not match the manifest's checksum.
    @Test func partitionedIndexesBuildPublishAndServe() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let lab = fixture.lab.lab
            let dimension = 16, count = 4_000
            var rng = SplitMix64(seed: 12)
            let centres = (0..<(40 * dimension)).map { _ in Float(rng.gaussian()) }
            var rows = [Float]()
            for _ in 0..<count {
                let centre = Int(rng.next() % 40)
                rows += (0..<dimension).map { centres[centre * dimension + $0] + 0.4 * Float(rng.gaussian()) }
            }
            let vectors = folder.appendingPathComponent("embeddings.f32"), ids = folder.appendingPathComponent("ids.txt")
            try rows.withUnsafeBytes { try Data($0).write(to: vectors) }
            try (0..<count).map { "ext\($0)" }.joined(separator: "\n").write(to: ids, atomically: true, encoding: .utf8)
            let built = try await lab.buildIndex(name: "podcasts/content", from: .vectors(path: vectors.path, ids: ids.path, dimension: dimension,
                                                                                           .partitioned(PartitionParameters())), actor: "ana")
            #expect(built.manifest.kind == .partitioned && built.manifest.files[IndexFiles.partitions] != nil && built.manifest.files[IndexFiles.graph] == nil)
            #expect((built.manifest.quality?.recallAt10 ?? 0) >= 0.9, "recall@10 \(built.manifest.quality?.recallAt10 ?? 0)")
            try await lab.publishIndex("podcasts/content", artefact: built.id, actor: "ana", reason: "content embeddings, partitioned")
            #expect(await fixture.components.reloader.reloadIfChanged())
            func cosine(_ a: Int, _ b: Int) -> Float {
                let x = rows[(a * dimension)..<((a + 1) * dimension)], y = rows[(b * dimension)..<((b + 1) * dimension)]
                let dot = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
                return dot / (x.reduce(0) { $0 + $1 * $1 }.squareRoot() * y.reduce(0) { $0 + $1 * $1 }.squareRoot())
            }
            let truth = (1..<count).sorted { cosine(0, $0) > cosine(0, $1) }.prefix(10).map { "ext\($0)" }
            try await fixture.app.test(.inProcess) { client in
                let answer = try await Self.answer(client, "/v1/similar/podcasts/content/items/ext0?n=10")
                #expect(answer.artefact == built.id && answer.generation == 1 && !answer.items.contains { $0.id == "ext0" })
                #expect(Set(answer.items.map(\.id)).intersection(truth).count >= 8, "\(answer.items.map(\.id)) vs exact \(truth)")
            }
            // One flipped byte in the codes: the artefact no longer opens, naming the file.
            let body = try lab.indexFolder(built.id).appendingPathComponent(IndexFiles.partitions)
            var bytes = try Data(contentsOf: body)
            bytes[bytes.count / 2] ^= 0x40
            try bytes.write(to: body)
            #expect { try SimilarityIndexArtefact(folder: try lab.indexFolder(built.id)) } throws: { "\($0)".contains(IndexFiles.partitions) }
        }
    }
}
