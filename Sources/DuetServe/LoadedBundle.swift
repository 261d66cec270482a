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
    /// Named indexes for similar items.
    let similarityIndexes: [String: HNSWIndex]
    let defaultSimilarityIndex: String?
    /// Exact recommendations: item rows longest first, usually proven after a few per cent of them.
    let itemScan: NormOrderedScan?
    /// Exact similar items (`index=exact`).
    let exactCosine: ExactIndex?
    /// Available items by popularity, best first: the fallback list.
    let popularItems: [Int32]
    /// Unavailable items as an exclusion set every request starts from.
    let baseExclusions: ExclusionSet
    /// Unavailable items plus items with too few training users to have meaningful neighbours.
    let similarExclusions: ExclusionSet
    static let minimumUsersForSimilar: Float = 5
    /// Each item's response JSON, rendered once.
    let fragments: ItemFragments

    public var id: String { bundle.id }

    /// Opens from a bundle folder, verifying every checksum first, then warms up with one query.
    /// A private, verified copy: editing or truncating the bundle's files afterwards changes nothing here.
    public convenience init(folder: URL) throws {
        try self.init(bundle: ModelBundle(folder: folder, privateCopy: true))
    }

    public init(bundle: ModelBundle) throws {
        self.bundle = bundle
        var recommendation: (String, HNSWIndex)?
        var similarity: [String: HNSWIndex] = [:]
        var defaultName: String?
        for descriptor in bundle.manifest.indexes where descriptor.kind == "hnsw" {
            guard let file = bundle.mappedFile(descriptor.file) else { continue }
            let index = try HNSWIndex(mapped: file)
            guard index.count == bundle.itemCount, index.dimension == bundle.dimension else {
                throw DuetError.corruptFile(path: "\(bundle.id)/\(descriptor.file)", reason: "index shape does not match the bundle's item factors")
            }
            if descriptor.metric == SimilarityMetric.innerProduct.rawValue {
                recommendation = (descriptor.name, index)
            } else {
                similarity[descriptor.name] = index
                if defaultName == nil { defaultName = descriptor.name }
            }
        }
        recommendationIndex = recommendation
        similarityIndexes = similarity
        defaultSimilarityIndex = defaultName
        if bundle.dimension > 0 {
            // The Float16 scan copy costs 2 bytes per value and load time on every swap; large
            // catalogues have HNSW for similar items, so they go without it.
            exactCosine = ExactIndex(vectors: bundle.itemFactors, dimension: bundle.dimension, metric: .cosine, owner: bundle,
                                     halfPrecision: bundle.itemCount <= 200_000)
            itemScan = NormOrderedScan(vectors: bundle.itemFactors, dimension: bundle.dimension, owner: bundle)
        } else {
            itemScan = nil
            exactCosine = nil
        }
        var exclusions = ExclusionSet(capacity: bundle.itemCount)
        for item in 0..<bundle.itemCount where !bundle.isAvailable(item: item) { exclusions.insert(item) }
        baseExclusions = exclusions
        var similar = exclusions
        for item in 0..<bundle.itemCount where bundle.popularity[item] < Self.minimumUsersForSimilar { similar.insert(item) }
        similarExclusions = similar
        let order = (0..<bundle.itemCount).filter { !exclusions.contains($0) }
            .sorted { bundle.popularity[$0] != bundle.popularity[$1] ? bundle.popularity[$0] > bundle.popularity[$1] : $0 < $1 }
        popularItems = order.prefix(5_000).map { Int32($0) }
        fragments = ItemFragments(bundle: bundle)
        warmUp()
    }

    func describe(_ item: Int, score: Float) -> RecommendedItem {
        let id = bundle.itemIDs[item]
        let entry = bundle.catalog[id]
        return RecommendedItem(id: id, score: score, title: entry?.title, artist: entry?.artist)
    }

    /// Touches the pages a first request would, so the first user after a swap is not the slow one.
    private func warmUp() {
        guard bundle.dimension > 0, bundle.userCount > 0 else { return }
        let query = Array(bundle.userFactors[0..<bundle.dimension])
        if let recommendationIndex { _ = recommendationIndex.index.search(query, k: 10, ef: 64) }
        _ = itemScan?.search(query, k: 10)
        _ = exactCosine?.search(query, k: 10)
    }
}
