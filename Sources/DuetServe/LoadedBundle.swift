public import DuetCore
import DuetKernels
import DuetSimilarity
public import Foundation

/// A verified bundle ready to answer: its indexes opened from the verified memory maps, the
/// popularity fallback list and the unavailable items precomputed, so a request only reads.
public final class LoadedBundle: Sendable {
    public let bundle: ModelBundle
    /// Inner-product index for user recommendations (MIPS-reduced), when the bundle carries one.
    let recommendationIndex: (name: String, index: HNSWIndex)?
    /// Similar items from the bundle's own indexes (`/v1/items/{item}/similar`).
    let similarity: BundleSimilarity
    /// An item-kNN bundle's lists: recommendations are scored from the user's history through them.
    let itemNeighbours: (name: String, lists: NeighbourLists)?
    /// Exact recommendations: item rows longest first, usually proven after a few per cent of them.
    let itemScan: NormOrderedScan?
    /// Available items by popularity, best first: the fallback list.
    let popularItems: [Int32]
    /// Unavailable items as an exclusion set every request starts from.
    let baseExclusions: ExclusionSet
    /// Each item's response JSON, rendered once.
    let fragments: ItemFragments
    /// Known users' exact lists, when the bundle is a factor model within the memory budget.
    let precomputedLists: PrecomputedLists?
    /// Users whose list is precomputed, and how long that took (logged at load).
    public var precomputedUsers: Int { precomputedLists?.users ?? 0 }
    public let precomputeTime: Duration

    public var id: String { bundle.id }

    /// Opens from a bundle folder, verifying every checksum first, then warms up with one query.
    /// A private, verified copy: editing or truncating the bundle's files afterwards changes nothing here.
    public convenience init(folder: URL, lists: ListPrecomputation = .init()) throws {
        try self.init(bundle: ModelBundle(folder: folder, privateCopy: true), lists: lists)
    }

    public init(bundle: ModelBundle, lists: ListPrecomputation = .init()) throws {
        self.bundle = bundle
        var recommendation: (String, HNSWIndex)?
        for descriptor in bundle.manifest.indexes where descriptor.kind == "hnsw" && descriptor.metric == SimilarityMetric.innerProduct.rawValue {
            guard let file = bundle.mappedFile(descriptor.file) else { continue }
            let index = try HNSWIndex(mapped: file)
            guard index.count == bundle.itemCount, index.dimension == bundle.dimension else {
                throw DuetError.corruptFile(path: "\(bundle.id)/\(descriptor.file)", reason: "index shape does not match the bundle's item factors")
            }
            recommendation = (descriptor.name, index)
        }
        recommendationIndex = recommendation
        // The Float16 scan copy costs 2 bytes per value and load time on every swap; large
        // catalogues have HNSW for similar items, so they go without it.
        similarity = try BundleSimilarity(bundle: bundle, halfPrecision: bundle.itemCount <= 200_000)
        itemNeighbours = try NeighbourLists.recommender(in: bundle)
        itemScan = bundle.dimension > 0 ? NormOrderedScan(vectors: bundle.itemFactors, dimension: bundle.dimension, owner: bundle) : nil
        var exclusions = ExclusionSet(capacity: bundle.itemCount)
        for item in 0..<bundle.itemCount where !bundle.isAvailable(item: item) { exclusions.insert(item) }
        baseExclusions = exclusions
        let order = (0..<bundle.itemCount).filter { !exclusions.contains($0) }
            .sorted { bundle.popularity[$0] != bundle.popularity[$1] ? bundle.popularity[$0] > bundle.popularity[$1] : $0 < $1 }
        popularItems = order.prefix(5_000).map { Int32($0) }
        fragments = ItemFragments(bundle: bundle)
        // Item-kNN bundles score from the live history, so only factor models have fixed lists.
        if let itemScan, itemNeighbours == nil, lists.depth > 0, bundle.userCount > 0,
           PrecomputedLists.bytes(users: bundle.userCount, depth: lists.depth) <= lists.maxBytes {
            // The same row limit `Recommender.rank` gives the scan.
            let rowLimit = recommendationIndex == nil ? Int.max : lists.annThreshold
            let started = ContinuousClock.now
            precomputedLists = PrecomputedLists(bundle: bundle, scan: itemScan, base: exclusions, depth: lists.depth, rowLimit: rowLimit)
            precomputeTime = ContinuousClock.now - started
        } else {
            precomputedLists = nil
            precomputeTime = .zero
        }
        warmUp()
    }

    func describe(_ item: Int, score: Float) -> RecommendedItem {
        let id = bundle.itemIDs[item]
        let entry = bundle.catalog[id]
        return RecommendedItem(id: id, score: score, title: entry?.title, artist: entry?.artist)
    }

    /// Touches the pages a first request would, so the first user after a swap is not the slow one.
    private func warmUp() {
        if let itemNeighbours, bundle.userCount > 0 {
            _ = itemNeighbours.lists.recommend(history: bundle.history(ofUser: 0).lazy.map { Int($0) }, k: 10, filter: baseExclusions)
        }
        guard bundle.dimension > 0, bundle.userCount > 0 else { return }
        let query = Array(bundle.userFactors[0..<bundle.dimension])
        if let recommendationIndex { _ = recommendationIndex.index.search(query, k: 10, ef: 64) }
        _ = itemScan?.search(query, k: 10)
        _ = similarity.similar(to: 0, n: 10, index: "exact")
    }
}
