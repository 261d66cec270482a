public import DuetCore
import DuetKernels

/// Items similar to an item, whatever answers: a graph over vectors, an exact scan, or item-kNN's
/// neighbour lists. Serve, the Lab, `duet similar` and the benchmarks all ask through this, with
/// one `ItemFilter`, so they cannot disagree about what "similar" returns.
public protocol ItemSimilarity: Sendable {
    var itemCount: Int { get }
    /// The `k` items most similar to `item` that `filter` admits, best first; never `item` itself.
    func neighbours(of item: Int, k: Int, filter: ItemFilter) -> [Neighbour]
    /// How similar two items are, in the index's own terms (cosine for vectors); 0 when unknown.
    func similarity(_ a: Int, _ b: Int) -> Float
}

/// The exclusions every similar-items answer starts from.
public enum SimilarItemsPolicy {
    /// Items with fewer training users than this are left out of factor-model answers: with one
    /// listener, an item's factor is that listener's taste, and it looks "similar" to everything they played.
    public static let minimumUsers: Float = 5

    /// Unavailable items, and (when `support` is given) items with too little support.
    public static func baseExclusions(itemCount: Int, isAvailable: (Int) -> Bool, support: ((Int) -> Float)? = nil) -> ExclusionSet {
        var excluded = ExclusionSet(capacity: itemCount)
        for item in 0..<itemCount where !isAvailable(item) || (support.map { $0(item) < minimumUsers } ?? false) { excluded.insert(item) }
        return excluded
    }
}

/// Similar items from an HNSW graph, searched from the item's own stored vector, with a predicate
/// applied inside the traversal. A predicate that leaves few items is answered by scoring exactly
/// those items instead. Both choices are measured by `duet bench filtered`.
public struct GraphItemSimilarity: ItemSimilarity {
    public let graph: HNSWIndex
    public let ef: Int

    public init(graph: HNSWIndex, ef: Int = 64) {
        self.graph = graph
        self.ef = ef
    }

    public var itemCount: Int { graph.count }

    /// The beam of a walk under a predicate. Each admitted result in the beam costs about
    /// 1/selectivity nodes walked, so the beam an unfiltered search needs is far more than enough:
    /// a quarter of it (at least k) kept recall@10 ≥ 0.99 at 10% selectivity in a quarter of the time.
    public func filteredBeam(k: Int) -> Int { max(k, ef / 4) }

    /// A filtered walk scores about 16·beam·n/allowed vectors; the scan scores `allowed`: scan
    /// below √(16·beam·n) admitted items.
    public static func prefersScan(allowed: Int, count: Int, beam: Int) -> Bool {
        Double(allowed) * Double(allowed) < 16 * Double(beam) * Double(count)
    }

    public func neighbours(of item: Int, k: Int, filter: ItemFilter) -> [Neighbour] {
        guard (0..<graph.count).contains(item), k > 0 else { return [] }
        var filter = filter
        filter.exclude(item)
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: graph.dimension) { query in
            guard graph.copyVector(of: item, into: query.baseAddress!) else { return [] }
            guard let allowed = filter.allowedItems else {
                // Only exclusions (unavailable items, the caller's): almost everything is admitted.
                return graph.search(query.baseAddress!, k: k, ef: max(ef, 2 * k), filter: filter)
            }
            let beam = filteredBeam(k: k)
            if Self.prefersScan(allowed: allowed.count, count: graph.count, beam: beam) {
                return graph.scan(query.baseAddress!, rows: allowed, k: k, filter: filter)
            }
            return graph.search(query.baseAddress!, k: k, ef: beam, filter: filter)
        }
    }

    public func similarity(_ a: Int, _ b: Int) -> Float { graph.storedSimilarity(a, b) }
}

/// Similar items from a partitioned index, searched from the item's own stored vector with the
/// filter applied before the shortlist. A predicate that leaves few items is answered by scoring
/// exactly those items; one that leaves more visits four times the cells, so enough admitted rows
/// reach the shortlist.
public struct PartitionedItemSimilarity: ItemSimilarity {
    public let index: PartitionedIndex

    public init(index: PartitionedIndex) { self.index = index }

    public var itemCount: Int { index.count }

    public func neighbours(of item: Int, k: Int, filter: ItemFilter) -> [Neighbour] {
        guard (0..<index.count).contains(item), k > 0 else { return [] }
        var filter = filter
        filter.exclude(item)
        let query = index.vector(of: item)
        let effort = index.defaultProbe(k: k)
        guard let allowed = filter.allowedItems else {
            return index.search(query, k: k, partitions: effort.partitions, rerank: effort.rerank, filter: filter)
        }
        if GraphItemSimilarity.prefersScan(allowed: allowed.count, count: index.count, beam: effort.rerank) {
            return index.scan(query, rows: allowed, k: k, filter: filter)
        }
        return index.search(query, k: k, partitions: 4 * effort.partitions, rerank: effort.rerank, filter: filter)
    }

    public func similarity(_ a: Int, _ b: Int) -> Float { index.storedSimilarity(a, b) }
}

/// Similar items by scanning every row exactly (`index=exact`, and small catalogues).
public struct ExactItemSimilarity: ItemSimilarity {
    public let exact: ExactIndex

    public init(exact: ExactIndex) { self.exact = exact }

    public var itemCount: Int { exact.count }

    public func neighbours(of item: Int, k: Int, filter: ItemFilter) -> [Neighbour] {
        guard (0..<exact.count).contains(item), k > 0 else { return [] }
        var filter = filter
        filter.exclude(item)
        return exact.search(exact.vectors.baseAddress! + item * exact.dimension, k: k, filter: filter)
    }

    public func similarity(_ a: Int, _ b: Int) -> Float {
        let d = exact.dimension, base = exact.vectors.baseAddress!
        let dot = VectorMath.dot(base + a * d, base + b * d, d)
        guard exact.metric == .cosine else { return dot }
        let norms = VectorMath.normSquared(base + a * d, d).squareRoot() * VectorMath.normSquared(base + b * d, d).squareRoot()
        return norms > 0 ? dot / norms : 0
    }
}

extension HNSWIndex {
    /// Exactly the best `k` of `rows` (that `filter` admits) for `query`, scored from the stored vectors.
    public func scan(_ query: UnsafePointer<Float>, rows: [Int32], k: Int, filter: ItemFilter) -> [Neighbour] {
        let scratch = takeScratch()
        defer { returnScratch(scratch) }
        prepareQuery(query, into: scratch.query)
        var heap = TopK(k)
        let chunk = 256
        var start = 0
        while start < rows.count {
            var count = 0
            for row in rows[start..<min(start + chunk, rows.count)] where !filter.rejects(Int(row)) && readable(Int(row)) {
                scratch.pending[count] = UInt32(row)
                count += 1
            }
            VectorMath.scoreGathered(scratch.query, base: records + 4 * (1 + m0), stride: recordBytes, ids: scratch.pending, count: count,
                                     dimension: dimension, into: scratch.pendingScores)
            for slot in 0..<count where scratch.pendingScores[slot] >= heap.threshold {
                heap.push(scratch.pendingScores[slot], Int32(scratch.pending[slot]))
            }
            start += chunk
        }
        return heap.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
    }

    /// The inner product of two stored rows: their cosine in a cosine index.
    public func storedSimilarity(_ a: Int, _ b: Int) -> Float {
        guard (0..<count).contains(a), (0..<count).contains(b), readable(a), readable(b) else { return 0 }
        return VectorMath.dot(vector(a), vector(b), dimension)
    }
}

/// The similar-items views a model bundle carries: each cosine HNSW it holds, by name, and `exact`
/// (or an item-kNN bundle's neighbour lists);
/// with the exclusions every answer starts from (unavailable items, items with too few users) and
/// the catalogue's attributes for filters. Serve's `/v1/items/{item}/similar` and `duet similar`
/// both answer through it.
public struct BundleSimilarity: Sendable {
    public let indexes: [String: any ItemSimilarity]
    /// The bundle's first cosine index, else "exact"; nil for a bundle without vectors.
    public let defaultName: String?
    public let baseExclusions: ExclusionSet
    public let attributes: CatalogAttributes

    /// `halfPrecision` adds the Float16 copy that doubles the exact scan's speed (2 bytes per value).
    public init(bundle: ModelBundle, halfPrecision: Bool = true) throws {
        var indexes: [String: any ItemSimilarity] = [:]
        var first: String?
        for descriptor in bundle.manifest.indexes where descriptor.kind == "hnsw" && descriptor.metric == SimilarityMetric.cosine.rawValue {
            guard let file = bundle.mappedFile(descriptor.file) else { continue }
            let graph = try HNSWIndex(mapped: file)
            guard graph.count == bundle.itemCount, graph.dimension == bundle.dimension else {
                throw DuetError.corruptFile(path: "\(bundle.id)/\(descriptor.file)", reason: "index shape does not match the bundle's item factors")
            }
            indexes[descriptor.name] = GraphItemSimilarity(graph: graph)
            if first == nil { first = descriptor.name }
        }
        if let (name, lists) = try NeighbourLists.recommender(in: bundle) {
            indexes[name] = lists
            first = first ?? name
        }
        if bundle.dimension > 0 {
            indexes["exact"] = ExactItemSimilarity(exact: ExactIndex(vectors: bundle.itemFactors, dimension: bundle.dimension, metric: .cosine,
                                                                     owner: bundle, halfPrecision: halfPrecision))
        }
        self.indexes = indexes
        defaultName = first ?? (bundle.dimension > 0 ? "exact" : nil)
        let popularity = bundle.popularity
        baseExclusions = SimilarItemsPolicy.baseExclusions(itemCount: bundle.itemCount, isAvailable: bundle.isAvailable(item:),
                                                           support: { popularity[$0] })
        attributes = CatalogAttributes(itemIDs: bundle.itemIDs, catalog: bundle.catalog)
    }

    /// Names a caller may ask for.
    public var names: [String] { indexes.keys.sorted() }

    /// Items similar to row `item` under the named index (default when nil); nil when no such index.
    public func similar(to item: Int, n: Int, index name: String?, predicates: [ItemPredicate] = [],
                        excluding rows: [Int] = []) -> (name: String, items: [Neighbour])? {
        guard let name = name ?? defaultName, let index = indexes[name] else { return nil }
        var base = baseExclusions
        for row in rows { base.insert(row) }
        return (name, index.neighbours(of: item, k: n, filter: attributes.filter(predicates, base: base)))
    }
}
