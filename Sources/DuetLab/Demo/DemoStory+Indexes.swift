import DuetCore
import DuetSimilarity
import DuetStore
import DuetTraining
import Foundation

/// The demo's similarity lane: an index published under its own name, then rebuilt and
/// republished while the recommender stays as it is.
extension DemoStory {
    static let similarIndex = "tracks/similar"

    /// Builds `tracks/similar` from production's item vectors, publishes it, and asks Serve for it.
    func publishSimilarityIndex() async throws {
        let build = try await lab.buildIndex(name: Self.similarIndex, from: .bundle("production", .hnsw(HNSWParameters(m: 16, efConstruction: 100))),
                                             threads: 2, actor: "chen")
        print(String(format: "   index %@ built for %@ from production's vectors in %.2f s: %d items, recall@10 %.3f against exact",
                     String(build.id.prefix(12)), Self.similarIndex, build.seconds, build.manifest.itemCount, build.manifest.quality?.recallAt10 ?? 0))
        let change = try await lab.publishIndex(Self.similarIndex, artefact: build.id, actor: "chen", reason: "similar tracks for the track page")
        try await waitForRegistry()
        try await showSimilar(title: "published by \(change.actor)")
        let seed = world.catalogItem(0)
        let genre = seed.tags.first ?? "pop"
        let filtered = try await getJSON("v1/similar/\(Self.similarIndex)/items/t0?n=3&filter=genre=\(genre.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? genre)&filter=explicit!=true")
        print("   the same, only \(genre) and not explicit (filters applied inside the graph search):")
        for item in filtered["items"] as? [[String: Any]] ?? [] { print("     - \(item["title"] as? String ?? "?") — \(item["artist"] as? String ?? "?")") }
        let explained = try await getJSON("v1/users/u42/recommendations?n=3&explainIndex=\(Self.similarIndex)")
        print("   why u42 gets what they get (explainIndex=\(Self.similarIndex): the played track most similar to each):")
        for item in explained["items"] as? [[String: Any]] ?? [] {
            let because = item["because"] as? [String: Any]
            let reason = because.map { String(format: "because you played %@ (cosine %.2f)", $0["title"] as? String ?? "?", $0["similarity"] as? Double ?? 0) }
            print("     - \(item["title"] as? String ?? "?") — \(reason ?? "nothing you played is similar")")
        }
    }

    /// Rebuilds the index with item-kNN on the snapshot and republishes it: the recommender's
    /// generation does not move, the index's does, and a rollback takes it back in one step.
    func republishSimilarityIndex(snapshot: String) async throws {
        step(14, "Similarity is its own lane: rebuild \(Self.similarIndex) with item-kNN and republish it; the recommender does not move")
        let before = try await getJSON("readyz")
        var configuration = ItemKNNConfiguration()
        configuration.neighbours = 50
        let build = try await lab.buildIndex(name: Self.similarIndex, from: .itemKNN(snapshot: snapshot, configuration), threads: 2, actor: "chen")
        print(String(format: "   item-kNN index %@ built in %.2f s (shrinkage %g, minimum support %d, 2 threads)", String(build.id.prefix(12)), build.seconds,
                     Double(configuration.shrinkage), configuration.minimumSupport))
        try await lab.publishIndex(Self.similarIndex, artefact: build.id, actor: "chen", reason: "co-listening beats factor cosine for the track page")
        try await waitForRegistry()
        try await showSimilar(title: "republished")
        let after = try await getJSON("readyz")
        print("   recommender generation \(before["generation"] as? Int ?? -1) → \(after["generation"] as? Int ?? -1): untouched")
        try await lab.rollbackIndex(Self.similarIndex, actor: "chen", reason: "rehearsing the index runbook")
        try await waitForRegistry()
        try await showSimilar(title: "rolled back one step")
        for entry in try await lab.registry.indexHistory(Self.similarIndex) {
            print("   \(entry.name) gen \(entry.generation) \(entry.action.rawValue) \(entry.from?.prefix(12) ?? "—") → \(entry.to.prefix(12)) by \(entry.actor): \(entry.reason)")
        }
    }

    func showSimilar(title: String) async throws {
        let reply = try await getJSON("v1/similar/\(Self.similarIndex)/items/t0?n=4")
        print("   tracks like \(world.catalogItem(0).displayName) from \(Self.similarIndex) \(title); Serve answers from artefact \((reply["artefact"] as? String ?? "?").prefix(12)), generation \(reply["generation"] as? Int ?? -1):")
        for item in reply["items"] as? [[String: Any]] ?? [] { print("     - \(item["title"] as? String ?? "?") — \(item["artist"] as? String ?? "?")") }
    }
}
