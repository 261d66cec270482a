public import DuetCore
import DuetKernels
import CDuetIntrinsics
public import Foundation
import Synchronization

public struct HNSWParameters: Sendable, Codable, Hashable {
    /// Links per node on the upper layers; layer 0 keeps 2·M.
    public var m = 16
    public var efConstruction = 200
    public var seed: UInt64 = 42
    /// The MIPS→cosine reduction (Bachrach et al., RecSys 2014) for inner-product indexes: one extra
    /// coordinate gives every row the same length. Off by default: with the heavy-tailed lengths of
    /// factor models almost every row ends up near the extra axis and the graph stops leading
    /// anywhere (recall@20 0.39 at ef 32 on a 64k-item ALS model, against 0.87 for a graph built on
    /// the inner product itself, as in ip-NSW, Morozov & Babenko, NeurIPS 2018).
    public var mipsReduction = false

    public init(m: Int = 16, efConstruction: Int = 200, seed: UInt64 = 42, mipsReduction: Bool = false) {
        self.m = m
        self.efConstruction = efConstruction
        self.seed = seed
        self.mipsReduction = mipsReduction
    }

    public func validate() throws(DuetError) {
        guard (2...128).contains(m) else { throw .invalidValue(field: "m", reason: "\(m) must be in 2…128") }
        guard efConstruction >= 1 else { throw .invalidValue(field: "ef-construction", reason: "must be ≥ 1") }
    }
}

/// A hierarchical navigable small-world graph (Malkov & Yashunin, TPAMI 2018), laid out as its
/// file: a header, each node's level, then one fixed-size record per node holding its layer-0
/// links and its vector (so a hop touches one cache region), then the upper layers' links.
/// An index built in memory and one memory-mapped from disk are the same bytes, searched by the
/// same code. The graph is immutable once built; searches take no locks, on it or on their buffers.
///
/// File layout (little-endian), format version 1:
///
///     0   magic "DUETHNSW"   8 version u32, metric u32   16 count   24 stored dimension   32 input dimension
///     40  M   48 M0 (layer-0 links)   56 max level   64 entry node   72 record bytes
///     80  offset of levels (u8 × count)   88 offset of layer-0 records   96 offset of upper starts (u64 × (count + 1))
///     104 offset of upper links (u32)     112 file size   120 FNV-1a 64 of bytes 0..<120
///     record: link count u32, M0 × u32 links, stored-dimension × f32
///     upper links of node n at level l ≥ 1: upperStart[n] + (l − 1)·(1 + M): count u32, M × u32
public final class HNSWIndex: @unchecked Sendable {
    public static let magic = Array("DUETHNSW".utf8)
    public static let formatVersion: UInt32 = 1
    static let headerSize = 128

    public let count: Int
    /// The dimension callers pass; stored vectors may carry one more (the MIPS coordinate).
    public let dimension: Int
    public let metric: SimilarityMetric
    let storedDimension: Int
    let m: Int
    let m0: Int
    /// Set once by the builder; never changes after.
    var maxLevel: Int
    var entry: Int
    let recordBytes: Int
    let levels: UnsafePointer<UInt8>
    let records: UnsafeRawPointer
    let upperStart: UnsafePointer<UInt64>
    let upperLinks: UnsafePointer<UInt32>
    /// The whole file's bytes, for saving.
    public let bytes: UnsafeRawBufferPointer
    /// Set when the file is read in and verified a chunk at a time (Serve): every record is
    /// checked in before it is read. Nil for an index built here or verified whole.
    public let pages: VerifiedPages?
    let recordsOffset: Int
    private let owner: AnyObject
    private let scratchPool = ScratchPool()

    /// Where each section starts, derived from the header values.
    struct Layout {
        var count: Int, storedDimension: Int, dimension: Int, m: Int, metric: SimilarityMetric
        var m0: Int { 2 * m }
        var recordBytes: Int { 4 * (1 + m0) + 4 * storedDimension }
        var levelsOffset: Int { HNSWIndex.headerSize }
        var recordsOffset: Int { (levelsOffset + count + 7) / 8 * 8 }
        var startsOffset: Int { (recordsOffset + count * recordBytes + 7) / 8 * 8 }
        var linksOffset: Int { startsOffset + (count + 1) * 8 }
        func fileSize(upperLinkCount: Int) -> Int { linksOffset + upperLinkCount * 4 }
    }

    init(layout: Layout, maxLevel: Int, entry: Int, bytes: UnsafeRawBufferPointer, owner: AnyObject, pages: VerifiedPages? = nil) {
        let base = bytes.baseAddress!
        count = layout.count
        dimension = layout.dimension
        metric = layout.metric
        storedDimension = layout.storedDimension
        m = layout.m
        m0 = layout.m0
        self.maxLevel = maxLevel
        self.entry = entry
        recordBytes = layout.recordBytes
        levels = (base + layout.levelsOffset).assumingMemoryBound(to: UInt8.self)
        records = UnsafeRawPointer(base + layout.recordsOffset)
        upperStart = (base + layout.startsOffset).assumingMemoryBound(to: UInt64.self)
        upperLinks = (base + layout.linksOffset).assumingMemoryBound(to: UInt32.self)
        self.bytes = bytes
        self.owner = owner
        self.pages = pages
        recordsOffset = layout.recordsOffset
    }

    // MARK: - Opening

    /// Reads an index from bytes (a memory map), checking everything a search will trust: header
    /// checksum, sizes, levels and upper-level links. A bad file is refused with a clear error, never
    /// a crash. Layer-0 links sit beside the vectors in every record, so checking them here would read
    /// the whole file before the first answer; the search checks each list as it reads it instead.
    convenience init(bytes: UnsafeRawBufferPointer, owner: AnyObject, path: String, pages: VerifiedPages? = nil) throws(DuetError) {
        func corrupt(_ reason: String) -> DuetError { .corruptFile(path: path, reason: reason) }
        guard bytes.count >= Self.headerSize else { throw corrupt("\(bytes.count) bytes is shorter than the header") }
        try pages?.require(0, Self.headerSize)
        guard Array(bytes[0..<8]) == Self.magic else { throw corrupt("not a Duet HNSW index (bad magic)") }
        func u64(_ offset: Int) -> Int { Int(truncatingIfNeeded: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        guard bytes.loadUnaligned(fromByteOffset: 120, as: UInt64.self) == FNV1a64.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<120])) else {
            throw corrupt("header checksum does not match")
        }
        let version = bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard version == Self.formatVersion else { throw corrupt("index format \(version) is not supported") }
        guard let metric = SimilarityMetric(code: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) else { throw corrupt("unknown metric") }
        guard u64(112) == bytes.count else { throw corrupt("file is \(bytes.count) bytes, header says \(u64(112)) (truncated?)") }
        let layout = Layout(count: u64(16), storedDimension: u64(24), dimension: u64(32), m: u64(40), metric: metric)
        let maxLevel = u64(56), entry = u64(64)
        guard layout.count >= 1, layout.count < Int(UInt32.max), layout.dimension >= 1, layout.storedDimension >= layout.dimension,
              layout.storedDimension - layout.dimension <= 1, (2...128).contains(layout.m), u64(48) == layout.m0,
              (0..<32).contains(maxLevel), entry < layout.count, u64(72) == layout.recordBytes else {
            throw corrupt("header values are inconsistent")
        }
        guard u64(80) == layout.levelsOffset, u64(88) == layout.recordsOffset, u64(96) == layout.startsOffset,
              u64(104) == layout.linksOffset, layout.linksOffset <= bytes.count, (bytes.count - layout.linksOffset) % 4 == 0 else {
            throw corrupt("sections overlap or lie outside the file")
        }
        // What the checks below read: the levels and the upper layers, a few percent of the file.
        try pages?.require(layout.levelsOffset, layout.count)
        try pages?.require(layout.startsOffset, bytes.count - layout.startsOffset)
        self.init(layout: layout, maxLevel: maxLevel, entry: entry, bytes: bytes, owner: owner, pages: pages)
        try validateGraph(path: path)
    }

    private func validateGraph(path: String) throws(DuetError) {
        func corrupt(_ reason: String) -> DuetError { .corruptFile(path: path, reason: reason) }
        let linkCount = (bytes.count - (UnsafeRawPointer(upperLinks) - bytes.baseAddress!)) / 4
        guard upperStart[0] == 0, Int(upperStart[count]) == linkCount else { throw corrupt("upper-layer link table does not fill its section") }
        guard Int(levels[entry]) == maxLevel else { throw corrupt("entry node is not on the top level") }
        for node in 0..<count {
            let level = Int(levels[node])
            guard level <= maxLevel, Int(upperStart[node + 1]) - Int(upperStart[node]) == level * (1 + m) else {
                throw corrupt("node \(node) has inconsistent levels")
            }
            for layer in stride(from: 1, through: level, by: 1) {
                let links = upper(node, layer)
                guard Int(links[0]) <= m else { throw corrupt("node \(node) has too many links at level \(layer)") }
                for slot in 0..<Int(links[0]) {
                    let target = Int(links[1 + slot])
                    guard target < count, Int(levels[target]) >= layer else { throw corrupt("node \(node) has a bad link at level \(layer)") }
                }
            }
        }
    }

    /// Memory-maps and validates an index file: no rebuild.
    public convenience init(contentsOf path: String) throws {
        let file = try MappedFile(path: path)
        try self.init(bytes: file.bytes, owner: file, path: path)
    }

    /// Opens an index from an already-mapped file (e.g. a verified bundle's).
    public convenience init(mapped file: MappedFile) throws {
        try self.init(bytes: file.bytes, owner: file, path: file.path)
    }

    /// Opens an index read in a chunk at a time: the header, levels and upper layers now, each
    /// layer-0 record (links and vector) when a search first reaches it.
    public convenience init(pages: VerifiedPages) throws {
        try self.init(bytes: pages.bytes, owner: pages, path: pages.path, pages: pages)
    }

    /// Writes the index atomically (temporary file, fsync, rename).
    public func write(to url: URL) throws {
        if let pages, !pages.verifyRemaining() { throw pages.failure ?? DuetError.corruptFile(path: pages.path, reason: "not verified") }
        let writer = try AtomicFileWriter(folder: url.deletingLastPathComponent())
        try writer.write(bytes)
        try writer.commit(to: url)
    }

    // MARK: - Layout access

    /// Whether `node`'s record may be read: always for an index in memory; for one read in by
    /// chunks, once its chunks are in and verified. A record that fails is treated as absent.
    @inline(__always) func readable(_ node: Int) -> Bool {
        guard let pages else { return true }
        return pages.ensure(recordsOffset + node * recordBytes, recordBytes)
    }

    @inline(__always) func layer0(_ node: Int) -> UnsafePointer<UInt32> {
        (records + node * recordBytes).assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always) func vector(_ node: Int) -> UnsafePointer<Float> {
        (records + node * recordBytes + 4 * (1 + m0)).assumingMemoryBound(to: Float.self)
    }

    /// Row `node` as stored (normalised for cosine), without the MIPS coordinate; false (and
    /// nothing copied) when its record failed verification.
    @discardableResult
    public func copyVector(of node: Int, into out: UnsafeMutablePointer<Float>) -> Bool {
        precondition((0..<count).contains(node), "row \(node) is outside 0..<\(count)")
        guard readable(node) else { return false }
        out.update(from: vector(node), count: dimension)
        return true
    }

    /// Pulls a vector's cache lines in ahead of its distance computation.
    @inline(__always) func prefetchVector(_ node: Int) {
        let start = records + node * recordBytes + 4 * (1 + m0)
        var offset = 0
        while offset < 4 * storedDimension {
            duet_prefetch(start + offset)
            offset += 64
        }
        duet_prefetch(start + 4 * storedDimension - 1)
    }

    @inline(__always) func upper(_ node: Int, _ level: Int) -> UnsafePointer<UInt32> {
        upperLinks + Int(upperStart[node]) + (level - 1) * (1 + m)
    }

    // MARK: - Search

    /// The k nearest rows to `query` (length `dimension`) with beam width `ef`, skipping excluded ids.
    /// Excluded nodes are still walked through, so filtering does not cut the graph apart.
    public func search(_ query: UnsafePointer<Float>, k: Int, ef: Int, excluding excluded: ExclusionSet = .none) -> [Neighbour] {
        search(query, k: k, ef: ef, filter: excluded)
    }

    /// The same search under any filter: rejected nodes are walked through but never returned, so
    /// the filter acts inside the traversal rather than on a list cut short after it.
    public func search<Filter: SearchFilter>(_ query: UnsafePointer<Float>, k: Int, ef: Int, filter excluded: Filter) -> [Neighbour] {
        guard k > 0, readable(entry) else { return [] }
        let scratch = takeScratch()
        defer { returnScratch(scratch) }
        let q = scratch.query
        prepareQuery(query, into: q)
        // A query's MIPS coordinate is 0, so its distances need only the caller's dimensions.
        let d = dimension
        var (current, currentDistance) = (entry, -VectorMath.dot(q, vector(entry), d))
        if maxLevel > 0 {
            (current, currentDistance) = descend(q, dimension: d, from: current, distance: currentDistance, topLevel: maxLevel,
                                                 downTo: 1, locks: NoLinkLocks())
        }
        searchLayer(q, dimension: d, entry: current, entryDistance: currentDistance, ef: max(ef, k), level: 0, excluded: excluded,
                    scratch: scratch, locks: NoLinkLocks())
        var results = scratch.top.drainSorted()
        if results.count > k { results.removeLast(results.count - k) }
        return results.map { Neighbour(id: Int($0.id), score: metricScore(-$0.distance)) }
    }

    public func search(_ query: [Float], k: Int, ef: Int, excluding excluded: ExclusionSet = .none) -> [Neighbour] {
        precondition(query.count == dimension, "query has \(query.count) values, index has dimension \(dimension)")
        return query.withUnsafeBufferPointer { search($0.baseAddress!, k: k, ef: ef, excluding: excluded) }
    }

    /// Scores are reported in the caller's terms: cosine, or the raw inner product.
    @inline(__always) private func metricScore(_ storedDot: Float) -> Float { storedDot }

    func prepareQuery(_ query: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        for j in 0..<dimension { out[j] = query[j] }
        if storedDimension > dimension { out[dimension] = 0 }
        if metric == .cosine {
            let norm = VectorMath.normSquared(out, dimension).squareRoot()
            if norm > 0 { for j in 0..<dimension { out[j] /= norm } }
        }
    }

    /// Greedy descent through the upper levels `topLevel` down to `lowest` (≥ 1): on each, move to
    /// the closest neighbour until none is closer. Returns where it ends and its distance.
    func descend<Locks: LinkLocks>(_ q: UnsafePointer<Float>, dimension d: Int, from start: Int, distance startDistance: Float,
                                   topLevel: Int, downTo lowest: Int, locks: Locks) -> (node: Int, distance: Float) {
        var current = start, currentDistance = startDistance
        for level in stride(from: topLevel, through: lowest, by: -1) {
            var changed = true
            while changed {
                changed = false
                locks.lock(current)
                let list = upper(current, level)
                var best = current
                for slot in 0..<Int(list[0]) {
                    let candidate = Int(list[1 + slot])
                    guard readable(candidate) else { continue }
                    let distance = -VectorMath.dot(q, vector(candidate), d)
                    if distance < currentDistance {
                        currentDistance = distance
                        best = candidate
                        changed = true
                    }
                }
                locks.unlock(current)
                current = best
            }
        }
        return (current, currentDistance)
    }

    /// Beam search on one layer; leaves the best `ef` (not excluded) in `scratch.top`.
    /// `locks` guards link lists that other threads may be rewriting (a parallel build); searches
    /// of a finished index pass `NoLinkLocks`, which compiles to nothing.
    /// `d` is how many leading values of `q` and the rows to compare: the stored dimension while
    /// building, the caller's for queries.
    func searchLayer<Locks: LinkLocks, Filter: SearchFilter>(_ q: UnsafePointer<Float>, dimension d: Int, entry: Int, entryDistance: Float, ef: Int,
                                                             level: Int, excluded: Filter, scratch: SearchScratch, locks: Locks) {
        let tag = scratch.nextTag()
        let visited = scratch.visited
        let pending = scratch.pending, pendingScores = scratch.pendingScores
        // Local copies: mutating a struct stored in a class costs a dynamic exclusivity check per call.
        var candidates = scratch.candidates, top = scratch.top
        defer {
            scratch.candidates = candidates
            scratch.top = top
        }
        candidates.reset()
        top.reset(capacity: ef)
        // Read once: nil (the common case) keeps the inner loop free of the chunk checks.
        let pages = self.pages
        visited[entry] = tag
        candidates.push(entryDistance, UInt32(entry))
        if !excluded.rejects(entry) { top.push(entryDistance, UInt32(entry)) }
        while let (distance, node) = candidates.pop() {
            if top.isFull, distance > top.worst { break }
            let list = level == 0 ? layer0(Int(node)) : upper(Int(node), level)
            // Two passes: first find the unvisited neighbours and start fetching their vectors, so
            // the cache misses overlap instead of arriving one distance at a time.
            var pendingCount = 0
            locks.lock(Int(node))
            // Layer-0 lists are not checked at open: a count past the list or a link past the last
            // node is never followed.
            for slot in 0..<min(Int(list[0]), level == 0 ? m0 : m) {
                let neighbour = Int(list[1 + slot])
                if neighbour >= count || visited[neighbour] == tag { continue }
                visited[neighbour] = tag
                if let pages, !pages.ensure(recordsOffset + neighbour * recordBytes, recordBytes) { continue }
                pending[pendingCount] = UInt32(neighbour)
                pendingCount += 1
                prefetchVector(neighbour)
            }
            locks.unlock(Int(node))
            // One kernel call scores every pending neighbour (the same dot product as everywhere).
            VectorMath.scoreGathered(q, base: records + 4 * (1 + m0), stride: recordBytes, ids: pending, count: pendingCount,
                                     dimension: d, into: pendingScores)
            for slot in 0..<pendingCount {
                let neighbour = Int(pending[slot])
                let candidateDistance = -pendingScores[slot]
                if !top.isFull || candidateDistance < top.worst {
                    candidates.push(candidateDistance, UInt32(neighbour))
                    if !excluded.rejects(neighbour) { top.push(candidateDistance, UInt32(neighbour)) }
                }
            }
        }
    }

    func takeScratch() -> SearchScratch {
        scratchPool.take() ?? SearchScratch(nodes: count, dimension: storedDimension)
    }

    func returnScratch(_ scratch: SearchScratch) { scratchPool.put(scratch) }
}

/// Search buffers kept for reuse without a lock on the read path: each slot holds one scratch (a
/// retained pointer) or 0, taken with an atomic exchange and filled with a compare-and-swap.
/// More concurrent searches than slots simply allocate, and the extra buffers are dropped.
final class ScratchPool: Sendable {
    private static let slotCount = 16
    private let slots: InlineArray<16, Atomic<UInt>> = InlineArray { _ in Atomic<UInt>(0) }

    func take() -> SearchScratch? {
        for slot in 0..<Self.slotCount {
            let bits = slots[slot].exchange(0, ordering: .acquiring)
            if bits != 0 { return Unmanaged<SearchScratch>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeRetainedValue() }
        }
        return nil
    }

    func put(_ scratch: SearchScratch) {
        let bits = UInt(bitPattern: Unmanaged.passRetained(scratch).toOpaque())
        for slot in 0..<Self.slotCount where slots[slot].compareExchange(expected: 0, desired: bits, ordering: .releasing).exchanged {
            return
        }
        Unmanaged<SearchScratch>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).release()
    }

    deinit {
        for slot in 0..<Self.slotCount {
            let bits = slots[slot].load(ordering: .acquiring)
            if bits != 0 { Unmanaged<SearchScratch>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).release() }
        }
    }
}

/// Who may touch a node's link lists: nobody else (a finished index), or other builder threads.
protocol LinkLocks {
    func lock(_ node: Int)
    func unlock(_ node: Int)
}

struct NoLinkLocks: LinkLocks {
    @inline(__always) func lock(_ node: Int) {}
    @inline(__always) func unlock(_ node: Int) {}
}

/// One spinlock byte per node, for building on several threads.
struct NodeLinkLocks: LinkLocks, @unchecked Sendable {
    let bytes: UnsafeMutablePointer<UInt8>
    @inline(__always) func lock(_ node: Int) { duet_spin_lock(bytes + node) }
    @inline(__always) func unlock(_ node: Int) { duet_spin_unlock(bytes + node) }
}

/// Per-search buffers, pooled so a query allocates nothing: a visited array stamped with a
/// generation tag (no clearing between queries; 16-bit tags keep it small in cache, as hnswlib's
/// do), the two heaps, and the prepared query.
final class SearchScratch: @unchecked Sendable {
    let visited: UnsafeMutablePointer<UInt16>
    let nodes: Int
    var tag: UInt16 = 0
    var candidates = DistanceHeap(closestFirst: true)
    var top = DistanceHeap(closestFirst: false)
    let query: UnsafeMutablePointer<Float>
    /// Unvisited neighbours of the node being expanded (at most M0 = 2·128).
    let pending = UnsafeMutablePointer<UInt32>.allocate(capacity: 256)
    let pendingScores = UnsafeMutablePointer<Float>.allocate(capacity: 256)

    init(nodes: Int, dimension: Int) {
        self.nodes = nodes
        visited = .allocate(capacity: nodes)
        visited.initialize(repeating: 0, count: nodes)
        query = .allocate(capacity: dimension)
    }

    func nextTag() -> UInt16 {
        tag &+= 1
        if tag == 0 {
            visited.update(repeating: 0, count: nodes)
            tag = 1
        }
        return tag
    }

    deinit {
        visited.deallocate()
        query.deallocate()
        pending.deallocate()
        pendingScores.deallocate()
        candidates.release()
        top.release()
    }
}

/// A binary heap of (distance, node) over raw storage: closest-first for the frontier,
/// farthest-first (bounded, replace-top when full) for results. No bounds checks or copy-on-write
/// in the search loop.
struct DistanceHeap {
    private var distances: UnsafeMutablePointer<Float>
    private var ids: UnsafeMutablePointer<UInt32>
    private var allocated: Int
    private(set) var count = 0
    let closestFirst: Bool
    var capacity = Int.max

    init(closestFirst: Bool) {
        self.closestFirst = closestFirst
        allocated = 256
        distances = .allocate(capacity: allocated)
        ids = .allocate(capacity: allocated)
    }

    /// Frees the storage; the owner calls it once, from deinit.
    func release() {
        distances.deallocate()
        ids.deallocate()
    }

    mutating func reset(capacity: Int = .max) {
        count = 0
        self.capacity = capacity
    }

    var isFull: Bool { count >= capacity }
    /// For the bounded result heap: the farthest kept.
    var worst: Float { count > 0 ? distances[0] : .infinity }

    @inline(__always) private func above(_ a: Float, _ b: Float) -> Bool { closestFirst ? a < b : a > b }

    private mutating func grow() {
        let size = allocated * 2
        let newDistances = UnsafeMutablePointer<Float>.allocate(capacity: size)
        let newIDs = UnsafeMutablePointer<UInt32>.allocate(capacity: size)
        newDistances.update(from: distances, count: count)
        newIDs.update(from: ids, count: count)
        distances.deallocate()
        ids.deallocate()
        distances = newDistances
        ids = newIDs
        allocated = size
    }

    mutating func push(_ distance: Float, _ id: UInt32) {
        if count >= capacity {
            // Bounded and full: the new entry replaces the worst if it is better.
            guard above(distances[0], distance) else { return }
            siftDown(distance, id)
            return
        }
        if count == allocated { grow() }
        var child = count
        count += 1
        while child > 0 {
            let parent = (child - 1) >> 1
            guard above(distance, distances[parent]) else { break }
            distances[child] = distances[parent]
            ids[child] = ids[parent]
            child = parent
        }
        distances[child] = distance
        ids[child] = id
    }

    /// Puts (distance, id) at the root and restores the heap downwards.
    @inline(__always)
    private mutating func siftDown(_ distance: Float, _ id: UInt32) {
        var parent = 0
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var best = left
            let right = left + 1
            if right < count, above(distances[right], distances[left]) { best = right }
            guard above(distances[best], distance) else { break }
            distances[parent] = distances[best]
            ids[parent] = ids[best]
            parent = best
        }
        distances[parent] = distance
        ids[parent] = id
    }

    mutating func pop() -> (Float, UInt32)? {
        guard count > 0 else { return nil }
        let result = (distances[0], ids[0])
        count -= 1
        if count > 0 { siftDown(distances[count], ids[count]) }
        return result
    }

    /// Closest first; empties the heap.
    mutating func drainSorted() -> [(distance: Float, id: UInt32)] {
        var out: [(distance: Float, id: UInt32)] = []
        out.reserveCapacity(count)
        while let (distance, id) = pop() { out.append((distance, id)) }
        return closestFirst ? out : out.reversed()
    }
}
