public import DuetCore
public import Foundation
#if canImport(Glibc)
import Glibc
#endif

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

    /// How the files come into memory.
    public enum Loading: Sendable {
        /// Mapped and verified whole, in place (the Lab, `duet similar`).
        case mapped
        /// Read into this process's memory (so later edits to the files change nothing); a graph with
        /// chunk digests a chunk at a time as searches reach it, each chunk verified first (Serve).
        /// Older artefacts are read and verified whole.
        case verifiedOnTouch
    }

    /// Set when the graph is read in by chunks: what is verified so far, and any failure.
    public let pages: VerifiedPages?
    /// The graph's chunk digests when the graph itself is mapped whole, for `checkGraphChunkDigests`.
    private let mappedChunkDigests: MappedFile?

    public init(folder: URL, loading: Loading = .mapped) throws {
        let byChunks = loading == .verifiedOnTouch
        let (verified, manifest) = try VerifiedFolder.open(folder, verify: true, privateCopy: loading != .mapped, what: "index", decode: { data in
            let manifest = try JSONDecoder().decode(IndexManifest.self, from: data)
            try manifest.validate()
            return manifest
        }, files: \.files, deferred: { manifest in
            byChunks && manifest.graphChunkBytes != nil ? [IndexFiles.graph] : []
        })
        id = verified.id
        self.manifest = manifest
        itemIDs = try verified.ids(IndexFiles.itemIDs, expected: manifest.itemCount)
        var pages: VerifiedPages?
        var mappedChunkDigests: MappedFile?
        switch manifest.kind {
        case .hnsw:
            let graph: HNSWIndex
            if verified.files[IndexFiles.graph] == nil, let chunkBytes = manifest.graphChunkBytes, let size = manifest.files[IndexFiles.graph]?.bytes {
                let chunks = try VerifiedPages(path: folder.appendingPathComponent(IndexFiles.graph).path, size: size, chunkBytes: chunkBytes,
                                               digests: verified.required(IndexFiles.graphChunks))
                graph = try HNSWIndex(pages: chunks)
                pages = chunks
            } else {
                graph = try HNSWIndex(mapped: verified.required(IndexFiles.graph))
                mappedChunkDigests = verified.files[IndexFiles.graphChunks]
            }
            guard graph.count == manifest.itemCount, graph.dimension == manifest.dimension, graph.metric.rawValue == manifest.metric else {
                throw DuetError.corruptFile(path: "\(verified.id)/\(IndexFiles.graph)", reason: "the graph's shape or metric does not match the manifest")
            }
            similarity = GraphItemSimilarity(graph: graph)
        case .partitioned:
            let index = try PartitionedIndex(mapped: verified.required(IndexFiles.partitions))
            guard index.count == manifest.itemCount, index.dimension == manifest.dimension, index.metric.rawValue == manifest.metric else {
                throw DuetError.corruptFile(path: "\(verified.id)/\(IndexFiles.partitions)", reason: "the index's shape or metric does not match the manifest")
            }
            similarity = PartitionedItemSimilarity(index: index)
        case .neighbours:
            similarity = try NeighbourLists(mapped: verified.required(IndexFiles.neighbours), itemCount: manifest.itemCount)
        }
        self.pages = pages
        self.mappedChunkDigests = mappedChunkDigests
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

    deinit { pages?.stop() }

    public var name: String { manifest.name }

    /// Why this artefact may no longer answer: a chunk read after opening failed its checksum.
    public var integrityFailure: DuetError? { pages?.failure }

    /// Checks a whole-mapped graph against its chunk digests, as Serve will check it chunk by chunk,
    /// so the Lab never publishes what Serve would withdraw. Nothing to check without digests.
    public func checkGraphChunkDigests() throws {
        guard let digests = mappedChunkDigests, let chunkBytes = manifest.graphChunkBytes,
              let graph = (similarity as? GraphItemSimilarity)?.graph else { return }
        let actual = ChunkDigests.compute(graph.bytes, chunkBytes: chunkBytes)
        guard actual.elementsEqual(digests.bytes) else {
            let bad = stride(from: 0, to: actual.count, by: ChunkDigests.digestBytes).first {
                !actual[$0..<$0 + ChunkDigests.digestBytes].elementsEqual(digests.bytes[$0..<$0 + ChunkDigests.digestBytes])
            }.map { $0 / ChunkDigests.digestBytes }
            throw DuetError.corruptFile(path: "\(id)/\(IndexFiles.graphChunks)",
                                        reason: "the digest of chunk \(bad.map(String.init) ?? "?") does not match \(IndexFiles.graph)")
        }
    }

    /// Reads in and verifies whatever is not in yet; throws the first failure.
    public func verifyRemaining() throws {
        guard let pages, !pages.verifyRemaining() else { return }
        throw pages.failure ?? DuetError.corruptFile(path: pages.path, reason: "verification was stopped")
    }

    /// Reads in and verifies the rest on a thread of its own at idle priority, so answering never
    /// waits for it; `done` gets the outcome (not called when the artefact goes away first).
    public func verifyRemainingInBackground(_ done: @escaping @Sendable (DuetError?) -> Void) {
        guard let pages else { return }
        let worker = Thread {
            #if os(Linux)
            // SCHED_IDLE (5; glibc hides the name without _GNU_SOURCE): runs only when a core is free.
            var priority = sched_param()
            _ = pthread_setschedparam(pthread_self(), 5, &priority)
            #endif
            if pages.verifyRemaining() { done(nil) } else if let failure = pages.failure { done(failure) }
        }
        worker.name = "duet-verify"
        worker.start()
    }

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
