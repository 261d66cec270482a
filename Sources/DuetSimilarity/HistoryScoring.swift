public import DuetCore
import DuetKernels

/// Item-kNN as a recommender, defined once for the Lab's evaluation and Serve: a user's score for
/// item j is the sum of sim(h, j) over the played items h whose lists hold j. Lists keep each item's
/// top K, so only items near something played are scored; callers rank the rest by popularity.
extension NeighbourLists {
    /// The lists a recommender bundle carries (`lab train --algo item-knn`), checked like any index.
    public static func recommender(in bundle: ModelBundle) throws -> (name: String, lists: NeighbourLists)? {
        guard let descriptor = bundle.manifest.indexes.first(where: { $0.kind == IndexKind.neighbours.rawValue }) else { return nil }
        guard let file = bundle.mappedFile(descriptor.file) else {
            throw DuetError.corruptFile(path: "\(bundle.id)/\(descriptor.file)", reason: "the manifest lists neighbour lists that are not in the bundle")
        }
        return (descriptor.name, try NeighbourLists(mapped: file, itemCount: bundle.itemCount))
    }

    /// Every listed item's score, sparse: at most |history| × K entries, whatever the catalogue's size.
    /// Each distinct history item counts once.
    public func scores(fromHistory history: some Sequence<Int>) -> [Int32: Float] {
        var seen = Set<Int>()
        var scores: [Int32: Float] = [:]
        for item in history where (0..<itemCount).contains(item) && seen.insert(item).inserted {
            for slot in Int(starts[item])..<Int(starts[item + 1]) { scores[Int32(ids[slot]), default: 0] += similarities[slot] }
        }
        return scores
    }

    /// The best `k` scored items the filter admits, best first (fewer when the lists reach fewer).
    public func recommend(history: some Sequence<Int>, k: Int, filter: some SearchFilter) -> [Neighbour] {
        guard k > 0 else { return [] }
        var heap = TopK(k)
        for (item, score) in scores(fromHistory: history) where !filter.rejects(Int(item)) && score >= heap.threshold {
            heap.push(score, item)
        }
        return heap.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
    }
}

extension ItemSimilarity {
    /// Why `item` is recommended: the history item most similar to it under this index, or nil when
    /// none is similar at all (similarity ≤ 0). Costs one `similarity` call per history item.
    public func mostSimilar(to item: Int, among history: some Sequence<Int>) -> Neighbour? {
        var best: Neighbour?
        for candidate in history where candidate != item {
            let similarity = similarity(candidate, item)
            if similarity > (best?.score ?? 0) { best = Neighbour(id: candidate, score: similarity) }
        }
        return best
    }
}
