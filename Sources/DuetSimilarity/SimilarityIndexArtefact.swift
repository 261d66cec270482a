public import DuetCore
public import Foundation

/// A similarity index artefact, opened and verified: the manifest's checksums hold for every file,
/// the graph or lists are checked, and the catalogue's attributes are ready for filters. Serve
/// loads one per published name; the Lab opens them to evaluate and to answer `duet similar`.
public final class SimilarityIndexArtefact: Sendable {
    public let id: String
    public let manifest: IndexManifest
    public let itemIDs: [String]
    public let catalog: [String: CatalogItem]
    public let similarity: any ItemSimilarity
    public let attributes: CatalogAttributes
    /// Unavailable items: every answer starts from these.
    public let baseExclusions: ExclusionSet
    private let itemIndex: [String: Int]

    /// With `privateCopy` the files are read into this process's memory and verified there (Serve);
    /// otherwise they are mapped and verified in place.
    public init(folder: URL, privateCopy: Bool = false) throws {
        let (verified, manifest) = try VerifiedFolder.open(folder, verify: true, privateCopy: privateCopy, what: "index", decode: { data in
            let manifest = try JSONDecoder().decode(IndexManifest.self, from: data)
            try manifest.validate()
            return manifest
        }, files: \.files)
        id = verified.id
        self.manifest = manifest
        itemIDs = try verified.ids(IndexFiles.itemIDs, expected: manifest.itemCount)
        switch manifest.kind {
        case .hnsw:
            let graph = try HNSWIndex(mapped: verified.required(IndexFiles.graph))
            guard graph.count == manifest.itemCount, graph.dimension == manifest.dimension, graph.metric.rawValue == manifest.metric else {
                throw DuetError.corruptFile(path: "\(verified.id)/\(IndexFiles.graph)", reason: "the graph's shape or metric does not match the manifest")
            }
            similarity = GraphItemSimilarity(graph: graph)
        case .neighbours:
            similarity = try NeighbourLists(mapped: verified.required(IndexFiles.neighbours), itemCount: manifest.itemCount)
        }
        catalog = try verified.catalog(IndexFiles.catalog)
        attributes = CatalogAttributes(itemIDs: itemIDs, catalog: catalog)
        var support: UnsafeBufferPointer<Float>?
        if let file = verified.files[IndexFiles.support] {
            guard file.size == 4 * manifest.itemCount else {
                throw DuetError.corruptFile(path: "\(verified.id)/\(IndexFiles.support)", reason: "\(file.size) bytes, expected \(4 * manifest.itemCount)")
            }
            support = file.buffer(of: Float.self, at: 0, count: manifest.itemCount)
        }
        let catalog = self.catalog, ids = itemIDs
        baseExclusions = SimilarItemsPolicy.baseExclusions(itemCount: ids.count, isAvailable: { catalog[ids[$0]]?.available ?? true },
                                                           support: support.map { values in { values[$0] } })
        itemIndex = Dictionary(itemIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public var name: String { manifest.name }

    public func row(of item: String) -> Int? { itemIndex[item] }

    /// The filter for a request: unavailable items, the caller's exclusions, and the predicates.
    public func filter(_ predicates: [ItemPredicate], excluding items: [String] = []) -> ItemFilter {
        var base = baseExclusions
        for item in items { if let row = itemIndex[item] { base.insert(row) } }
        return attributes.filter(predicates, base: base)
    }

    /// Items similar to `item`, best first; nil when the index does not hold the item.
    public func similar(to item: String, n: Int, predicates: [ItemPredicate] = [], excluding: [String] = []) -> [Neighbour]? {
        guard let row = itemIndex[item] else { return nil }
        return similarity.neighbours(of: row, k: n, filter: filter(predicates, excluding: excluding))
    }
}
