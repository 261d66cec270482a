import DuetCore
import DuetLab
import DuetLabTestSupport
import DuetServe
import DuetSimilarity
import DuetStore
import DuetStoreTestSupport
import DuetTestSupport
import DuetTraining
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import Testing

/// Item-kNN from training to serving: trained and evaluated in the Lab like any model, promoted,
/// and served from the user's history (recent plays included) with the same fallbacks; `explain`
/// names the history item behind each recommendation.
@Suite struct ItemKNNServingTests {
    struct Listed: Decodable {
        struct Item: Decodable {
            var id: String
            var score: Float
            var because: Because?
        }
        struct Source: Decodable {
            var index: String
            var artefact: String?
            var generation: Int?
        }
        var bundle: String
        var index: String
        var fallback: String?
        var explanation: Source?
        var items: [Item]
    }

    static func list(_ client: HTTPTestClient, _ uri: String) async throws -> Listed {
        try await client.execute(uri: uri, method: .get) { response in
            #expect(response.status == .ok, "\(uri): \(String(buffer: response.body))")
            return try JSONDecoder().decode(Listed.self, from: Data(response.body.readableBytesView))
        }
    }

    /// Σ sim(h → j) over the history, from the trained model in memory (not the bundle's file), best first.
    static func expectedScores(_ model: ItemKNNModel, history: [Int]) -> [(item: Int, score: Float)] {
        var scores: [Int: Float] = [:]
        for h in Set(history) { for (j, similarity) in model.neighbours(of: h) { scores[j, default: 0] += similarity } }
        return scores.filter { !history.contains($0.key) }.map { ($0.key, $0.value) }.sorted { $0.score > $1.score }
    }

    @Test func itemKNNTrainsEvaluatesAndServesFromHistory() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder, promote: false)
            let lab = fixture.lab.lab
            let snapshot = try #require(try await lab.registry.model(fixture.lab.first)).snapshot
            var configuration = ItemKNNConfiguration()
            configuration.neighbours = 40
            let (id, model) = try await lab.train(snapshot: snapshot, split: fixture.lab.split, algorithm: .itemKNN(configuration),
                                                  name: "knn", register: true)
            let knn = try #require(model.itemNeighbours)
            let bundle = try await lab.openBundle(id)
            #expect(bundle.manifest.modelKind == "item-knn" && bundle.dimension == 0)
            #expect(bundle.manifest.indexes.map(\.name) == ["items/item-knn"])

            // Evaluated as it would serve, on the held-out part of the same split.
            let (comparison, stored) = try await lab.evaluate(candidate: id, baseline: "popularity", resamples: 200)
            #expect(stored != nil)
            #expect(comparison.candidateMetrics.ndcg > comparison.baselineMetrics.ndcg,
                    "item-kNN \(comparison.candidateMetrics.ndcg) vs popularity \(comparison.baselineMetrics.ndcg)")

            try await lab.registry.promote(id, actor: "test", reason: "item-knn", evidence: .override(reason: "test"), expectedGeneration: 0)
            #expect(await fixture.components.reloader.reloadIfChanged())
            let user = try #require((0..<bundle.userCount).first { bundle.history(ofUser: $0).count >= 5 })
            let userID = bundle.userIDs[user]
            let history = bundle.history(ofUser: user).map { Int($0) }

            try await fixture.app.test(.inProcess) { client in
                let listed = try await Self.list(client, "/v1/users/\(userID)/recommendations?n=10")
                #expect(listed.bundle == id && listed.index == "items/item-knn" && listed.fallback == nil && listed.items.count == 10)
                #expect(listed.explanation == nil && listed.items.allSatisfy { $0.because == nil })
                let historyIDs = Set(history.map { bundle.itemIDs[$0] })
                #expect(!listed.items.contains { historyIDs.contains($0.id) })
                // The served scores are the sums of the trained model's similarities, best first.
                let expected = Self.expectedScores(knn, history: history)
                let expectedByID = Dictionary(uniqueKeysWithValues: expected.map { (bundle.itemIDs[$0.item], $0.score) })
                for item in listed.items { #expect(abs((expectedByID[item.id] ?? -1) - item.score) < 1e-4, "\(item.id)") }
                #expect(listed.items.map(\.score) == listed.items.map(\.score).sorted(by: >))
                if expected.count > 10 { #expect(listed.items.last!.score >= expected[10].score - 1e-4) }

                // Explained: each item's because is the history item most similar to it.
                let explained = try await Self.list(client, "/v1/users/\(userID)/recommendations?n=10&explain=true")
                #expect(explained.explanation?.index == "items/item-knn" && explained.items.map(\.id) == listed.items.map(\.id))
                let lists = try #require(NeighbourLists.recommender(in: bundle)?.lists)
                for item in explained.items {
                    let because = try #require(item.because, "\(item.id) has a positive score, so something in the history lists it")
                    #expect(historyIDs.contains(because.id))
                    let row = try #require(bundle.itemIndex(of: item.id))
                    let best = history.map { lists.similarity($0, row) }.max()!
                    #expect(abs(because.similarity - best) < 1e-6 && because.similarity > 0)
                }

                // A listener the bundle never saw: popularity until they play something, then item-kNN from those plays.
                let newcomer = try await Self.list(client, "/v1/users/newcomer/recommendations?n=5")
                #expect(newcomer.fallback == "unknown-user" && newcomer.index == "popularity")
                let played = [bundle.itemIDs[history[0]], bundle.itemIDs[history[1]]]
                let events = played.map { #"{"user":"newcomer","item":"\#($0)","kind":"play","timestamp":1767225600}"# }
                try await client.execute(uri: "/v1/events", method: .post, body: ByteBuffer(string: "[\(events.joined(separator: ","))]")) {
                    #expect($0.status == .accepted)
                }
                let warmed = try await Self.list(client, "/v1/users/newcomer/recommendations?n=5&explain=true")
                #expect(warmed.fallback == nil && warmed.index == "items/item-knn" && !warmed.items.contains { played.contains($0.id) })
                #expect(warmed.items.allSatisfy { $0.because.map { played.contains($0.id) } ?? true })
                #expect(warmed.items.contains { $0.because != nil })

                // The bundle's lists answer its similar items too.
                try await client.execute(uri: "/v1/items/\(played[0])/similar?n=5", method: .get) { response in
                    #expect(response.status == .ok)
                    let similar = try JSONDecoder().decode(SimilarItemsResponse.self, from: Data(response.body.readableBytesView))
                    #expect(similar.index == "items/item-knn" && !similar.items.isEmpty)
                }
                for (uri, status) in [("/v1/users/\(userID)/recommendations?explain=maybe", 400),
                                      ("/v1/users/\(userID)/recommendations?explainIndex=tracks/nowhere", 404),
                                      ("/v1/users/\(userID)/recommendations?explainIndex=Bad%20Name", 400),
                                      ("/v1/users/\(userID)/recommendations?explain=false&explainIndex=tracks/x", 404)] {
                    try await client.execute(uri: uri, method: .get) { response in
                        #expect(response.status.code == status, "\(uri): \(String(buffer: response.body))")
                    }
                }
            }
        }
    }

    /// A factor model explained by a published index: `because` comes from that index's similarity,
    /// and the answer names the artefact and generation that explained it.
    @Test func explanationsComeFromANamedIndex() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let lab = fixture.lab.lab
            let snapshot = try #require(try await lab.registry.model(fixture.lab.first)).snapshot
            var configuration = ItemKNNConfiguration()
            configuration.neighbours = 40
            let built = try await lab.buildIndex(name: "tracks/co-played", from: .itemKNN(snapshot: snapshot, configuration), actor: "ana")
            try await lab.publishIndex("tracks/co-played", artefact: built.id, actor: "ana", reason: "explanations")
            #expect(await fixture.components.reloader.reloadIfChanged())
            let artefact = try await lab.openIndex(built.id)
            let bundle = try #require(fixture.components.store.current.production).bundle
            let user = try #require((0..<bundle.userCount).first { bundle.history(ofUser: $0).count >= 5 })
            let historyRows = bundle.history(ofUser: user).compactMap { artefact.row(of: bundle.itemIDs[Int($0)]) }
            try await fixture.app.test(.inProcess) { client in
                let listed = try await Self.list(client, "/v1/users/\(bundle.userIDs[user])/recommendations?n=10&explainIndex=tracks/co-played")
                #expect(listed.explanation?.index == "tracks/co-played" && listed.explanation?.artefact == built.id && listed.explanation?.generation == 1)
                #expect(listed.index != "items/item-knn", "the recommender is still the factor model")
                var explainedCount = 0
                for item in listed.items {
                    let row = try #require(artefact.row(of: item.id))
                    let best = historyRows.map { artefact.similarity.similarity($0, row) }.max() ?? 0
                    if let because = item.because {
                        explainedCount += 1
                        #expect(abs(because.similarity - best) < 1e-6 && artefact.row(of: because.id).map(historyRows.contains) == true)
                    } else {
                        #expect(best <= 0, "\(item.id) has a similar history item but no because")
                    }
                }
                #expect(explainedCount > 0)
                // The bundle's own similarity by default.
                let own = try await Self.list(client, "/v1/users/\(bundle.userIDs[user])/recommendations?n=10&explain=true")
                #expect(own.explanation?.index.hasPrefix("items/als-") == true && own.explanation?.artefact == nil)
                #expect(own.items.allSatisfy { $0.because != nil }, "cosine between factors is rarely ≤ 0 for the best match")
            }
        }
    }
}
