public import DuetCore
public import DuetSimilarity

/// Similar items from a bundle's own indexes, for the Lab's look at a model.
public enum SimilarItems {
    /// Items with fewer than `minimumUsers` training users are skipped: with one listener, an item's
    /// factor is that listener's taste, and it would look "similar" to everything they played.
    public static func search(bundle: ModelBundle, item: Int, n: Int, index requested: String?, minimumUsers: Int = 5) throws -> (index: String, items: [Neighbour]) {
        let d = bundle.dimension
        let query = Array(bundle.itemFactors[(item * d)..<((item + 1) * d)])
        var excluded = ExclusionSet(capacity: bundle.itemCount, excluding: [item])
        for other in 0..<bundle.itemCount where bundle.popularity[other] < Float(minimumUsers) { excluded.insert(other) }
        let cosine = bundle.manifest.indexes.filter { $0.metric == SimilarityMetric.cosine.rawValue }
        if let descriptor = cosine.first(where: { requested == nil || $0.name == requested }), let file = bundle.mappedFile(descriptor.file) {
            return (descriptor.name, try HNSWIndex(mapped: file).search(query, k: n, ef: max(64, 2 * n), excluding: excluded))
        }
        guard requested == nil || requested == "exact" else {
            throw DuetError.notFound(kind: "index", id: "\(requested!) (bundle has: \(cosine.map(\.name).joined(separator: ", ")), exact)")
        }
        let exact = ExactIndex(vectors: bundle.itemFactors, dimension: d, metric: .cosine, owner: bundle)
        return ("exact", exact.search(query, k: n, excluding: excluded))
    }
}
