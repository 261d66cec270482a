public import DuetCore
import CDuetIntrinsics
import DuetKernels
public import Foundation

/// How a partitioned index is built.
public struct PartitionParameters: Sendable, Hashable {
    /// k-means cells; nil for √n (as ScaNN and faiss suggest).
    public var partitions: Int?
    /// Lloyd iterations for the cells and for each subspace's codebook.
    public var iterations: Int
    /// Values per 4-bit code: 1 (16 levels per value, d/2 bytes a row) or 2 (16 centres per pair, d/4 bytes).
    public var subspaceWidth: Int
    public var seed: UInt64

    public init(partitions: Int? = nil, iterations: Int = 10, subspaceWidth: Int = 1, seed: UInt64 = 42) {
        self.partitions = partitions
        self.iterations = iterations
        self.subspaceWidth = subspaceWidth
        self.seed = seed
    }

    public func validate() throws(DuetError) {
        if let partitions, partitions < 1 { throw .invalidValue(field: "partitions", reason: "\(partitions) must be ≥ 1") }
        guard (1...100).contains(iterations) else { throw .invalidValue(field: "iterations", reason: "\(iterations) must be in 1...100") }
        guard (1...2).contains(subspaceWidth) else { throw .invalidValue(field: "subspace width", reason: "\(subspaceWidth) must be 1 or 2") }
    }

    public func partitionCount(rows: Int) -> Int {
        max(1, min(rows, partitions ?? Int(Double(rows).squareRoot().rounded())))
    }
}

/// A partitioned index over 4-bit product-quantized residuals, searched with SIMD lookup tables and
/// re-ranked exactly (the shape of ScaNN and faiss's IVF-PQ fast scan):
/// - rows are split into k-means cells; a query visits the cells whose centroids score best;
/// - each row's residual from its centroid is coded as one of 16 centres per pair of dimensions, so a
///   row is d/2 nibbles, and 32 rows score at once from per-query tables of 8-bit entries;
/// - the best `rerank` approximate scores are re-scored from the stored float vectors.
/// Built in memory or mapped from disk, it is the same bytes, searched by the same code.
///
/// File layout (little-endian), format version 1; sections start on 64-byte boundaries:
///
///     0   magic "DUETIVF4"   8 version u32, metric u32   16 count   24 dimension   32 partitions
///     40  blocks of 32 rows   48 file size   56 subspace width w (1 or 2)   64…119 zero
///     120 FNV-1a 64 of bytes 0..<120
///     centroids (partitions × dimension f32), codebooks (d′/w subspaces × 16 × w f32, d′ = dimension
///     rounded up to 2w), partition starts (partitions + 1 × u32), codes (blocks × d′/2w × 32 bytes; see
///     `VectorMath.scanCodes4`), vectors by position (count × dimension f32, normalised for cosine),
///     row of each position (count × u32)
public final class PartitionedIndex: @unchecked Sendable {
    public static let magic = Array("DUETIVF4".utf8)
    public static let formatVersion: UInt32 = 1
    static let headerSize = 128
    static let centres = 16
    /// Table entries are 8-bit; a row's sum must stay below 2¹⁵ for the kernel's signed compare.
    static func tableCeiling(subspaces: Int) -> Float { Float(min(255, 32_767 / subspaces)) }

    public let count: Int
    public let dimension: Int
    public let metric: SimilarityMetric
    public let partitionCount: Int
    /// Values per subspace (one 4-bit code each), and the dimension rounded up to two subspaces.
    let width: Int
    let paddedDimension: Int
    var subspaces: Int { paddedDimension / width }
    var pairs: Int { subspaces / 2 }
    let centroids: UnsafePointer<Float>
    let codebooks: UnsafePointer<Float>
    let starts: UnsafePointer<UInt32>
    let codes: UnsafePointer<UInt8>
    let vectors: UnsafePointer<Float>
    let rows: UnsafePointer<UInt32>
    /// Derived at open: each partition's first block, the position of each row, the centroids in
    /// value-major blocks of 16 (one kernel call scores 16), and the largest partition.
    let blockStarts: [Int]
    let positionOfRow: [UInt32]
    let centroidBlocks: [Float]
    /// Codebooks by value: `bookColumns[(subspace·width + t)·16 + centre]`.
    let bookColumns: [Float]
    let largestPartition: Int
    /// The whole file's bytes, for saving.
    public let bytes: UnsafeRawBufferPointer
    private let owner: AnyObject

    struct Layout {
        var count: Int, dimension: Int, partitions: Int, blocks: Int, width: Int
        var paddedDimension: Int { (dimension + 2 * width - 1) / (2 * width) * (2 * width) }
        static func align(_ offset: Int) -> Int { (offset + 63) / 64 * 64 }
        var centroidsOffset: Int { PartitionedIndex.headerSize }
        var codebooksOffset: Int { Self.align(centroidsOffset + partitions * dimension * 4) }
        var startsOffset: Int { Self.align(codebooksOffset + paddedDimension * PartitionedIndex.centres * 4) }
        var codesOffset: Int { Self.align(startsOffset + (partitions + 1) * 4) }
        var vectorsOffset: Int { Self.align(codesOffset + blocks * paddedDimension / (2 * width) * 32) }
        var rowsOffset: Int { Self.align(vectorsOffset + count * dimension * 4) }
        var fileSize: Int { rowsOffset + count * 4 }
    }

    // MARK: - Opening

    init(bytes: UnsafeRawBufferPointer, owner: AnyObject, path: String) throws(DuetError) {
        func corrupt(_ reason: String) -> DuetError { .corruptFile(path: path, reason: reason) }
        guard bytes.count >= Self.headerSize else { throw corrupt("\(bytes.count) bytes is shorter than the header") }
        guard Array(bytes[0..<8]) == Self.magic else { throw corrupt("not a Duet partitioned index (bad magic)") }
        guard bytes.loadUnaligned(fromByteOffset: 120, as: UInt64.self) == FNV1a64.hash(UnsafeRawBufferPointer(rebasing: bytes[0..<120])) else {
            throw corrupt("header checksum does not match")
        }
        func u64(_ offset: Int) -> Int { Int(truncatingIfNeeded: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        let version = bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        guard version == Self.formatVersion else { throw corrupt("partitioned index format \(version) is not supported") }
        guard let metric = SimilarityMetric(code: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) else { throw corrupt("unknown metric") }
        let layout = Layout(count: u64(16), dimension: u64(24), partitions: u64(32), blocks: u64(40), width: u64(56))
        guard (1...2).contains(layout.width), layout.count >= 1, layout.count < Int(UInt32.max), (1...65_536).contains(layout.dimension),
              (1...layout.count).contains(layout.partitions), (0...layout.count).contains(layout.blocks) else {
            throw corrupt("header values are inconsistent")
        }
        guard u64(48) == bytes.count, layout.fileSize == bytes.count else {
            throw corrupt("file is \(bytes.count) bytes, its header describes \(layout.fileSize) (truncated?)")
        }
        let base = bytes.baseAddress!
        let starts = (base + layout.startsOffset).assumingMemoryBound(to: UInt32.self)
        var blockStarts = [0]
        blockStarts.reserveCapacity(layout.partitions + 1)
        var largest = 0
        guard starts[0] == 0, Int(starts[layout.partitions]) == layout.count else { throw corrupt("partition starts do not cover the rows") }
        for partition in 0..<layout.partitions {
            guard starts[partition + 1] >= starts[partition] else { throw corrupt("partition \(partition) ends before it starts") }
            let size = Int(starts[partition + 1] - starts[partition])
            largest = max(largest, size)
            blockStarts.append(blockStarts[partition] + (size + 31) / 32)
        }
        guard blockStarts[layout.partitions] == layout.blocks else { throw corrupt("the code blocks do not match the partition sizes") }
        let rows = (base + layout.rowsOffset).assumingMemoryBound(to: UInt32.self)
        var positionOfRow = [UInt32](repeating: .max, count: layout.count)
        for position in 0..<layout.count {
            let row = Int(rows[position])
            guard row < layout.count, positionOfRow[row] == .max else { throw corrupt("position \(position) names row \(row) twice or out of range") }
            positionOfRow[row] = UInt32(position)
        }
        count = layout.count
        dimension = layout.dimension
        self.metric = metric
        partitionCount = layout.partitions
        width = layout.width
        paddedDimension = layout.paddedDimension
        centroids = (base + layout.centroidsOffset).assumingMemoryBound(to: Float.self)
        codebooks = (base + layout.codebooksOffset).assumingMemoryBound(to: Float.self)
        self.starts = starts
        codes = (base + layout.codesOffset).assumingMemoryBound(to: UInt8.self)
        vectors = (base + layout.vectorsOffset).assumingMemoryBound(to: Float.self)
        self.rows = rows
        self.blockStarts = blockStarts
        self.positionOfRow = positionOfRow
        centroidBlocks = KMeans.valueMajorBlocks(UnsafeBufferPointer(start: centroids, count: layout.partitions * layout.dimension),
                                                 dimension: layout.dimension)
        largestPartition = largest
        var columns = [Float](repeating: 0, count: layout.paddedDimension * Self.centres)
        let books = (base + layout.codebooksOffset).assumingMemoryBound(to: Float.self), width = layout.width
        for subspace in 0..<layout.paddedDimension / width {
            for centre in 0..<Self.centres {
                for t in 0..<width { columns[(subspace * width + t) * Self.centres + centre] = books[(subspace * Self.centres + centre) * width + t] }
            }
        }
        bookColumns = columns
        self.bytes = bytes
        self.owner = owner
    }

    /// Memory-maps and validates an index file: no rebuild.
    public convenience init(contentsOf path: String) throws {
        let file = try MappedFile(path: path)
        try self.init(bytes: file.bytes, owner: file, path: path)
    }

    /// Opens an index from an already-mapped file (e.g. a verified artefact's).
    public convenience init(mapped file: MappedFile) throws {
        try self.init(bytes: file.bytes, owner: file, path: file.path)
    }

    /// Writes the index atomically (temporary file, fsync, rename).
    public func write(to url: URL) throws {
        let writer = try AtomicFileWriter(folder: url.deletingLastPathComponent())
        try writer.write(bytes)
        try writer.commit(to: url)
    }

    // MARK: - Searching

    /// The stored vector of `row` (normalised in a cosine index).
    public func vector(of row: Int) -> UnsafePointer<Float> { vectors + Int(positionOfRow[row]) * dimension }

    /// The size of the partition holding `row`'s position, for tests and tuning.
    public func partitionSizes() -> [Int] { (0..<partitionCount).map { Int(starts[$0 + 1] - starts[$0]) } }

    /// The effort a search spends by default: about 6% of the cells (ScaNN's 20 of 316 at 100k rows)
    /// and 5 re-scored candidates per answer, at least 50.
    public func defaultProbe(k: Int) -> (partitions: Int, rerank: Int) {
        (max(1, min(partitionCount, Int((Double(partitionCount) * 0.065).rounded(.up)))), max(50, 5 * k))
    }

    public func search(_ query: [Float], k: Int, partitions: Int? = nil, rerank: Int? = nil, excluding excluded: ExclusionSet = .none) -> [Neighbour] {
        precondition(query.count == dimension, "query has \(query.count) values, the index \(dimension)")
        return query.withUnsafeBufferPointer { search($0.baseAddress!, k: k, partitions: partitions, rerank: rerank, filter: excluded) }
    }

    /// The `k` best rows that `filter` admits, best first, visiting the `partitions` best cells and
    /// re-scoring the `rerank` best approximate scores exactly.
    public func search<Filter: SearchFilter>(_ query: UnsafePointer<Float>, k: Int, partitions probe: Int? = nil, rerank: Int? = nil,
                                             filter: Filter) -> [Neighbour] {
        guard k > 0 else { return [] }
        let defaults = defaultProbe(k: k)
        let probe = max(1, min(partitionCount, probe ?? defaults.partitions))
        let shortlist = max(k, rerank ?? defaults.rerank)
        let d = dimension, padded = paddedDimension, cellSlots = (partitionCount + 15) / 16 * 16
        let hitSlots = (largestPartition + 31) / 32 * 32
        let pooled = 8 * shortlist
        let floats = padded + cellSlots + subspaces * Self.centres + pooled
        let byteCount = 4 * floats + 32 * subspaces + 6 * hitSlots + 4 * pooled
        return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 64) { raw -> [Neighbour] in
            let q = raw.baseAddress!.bindMemory(to: Float.self, capacity: floats)
            let cellScores = q + padded, floatTables = cellScores + cellSlots, exact = floatTables + subspaces * Self.centres
            let tables = (raw.baseAddress! + 4 * floats).bindMemory(to: UInt8.self, capacity: 32 * subspaces)
            let positions = (raw.baseAddress! + 4 * floats + 32 * subspaces).bindMemory(to: UInt32.self, capacity: hitSlots + pooled)
            let candidates = positions + hitSlots
            let sums = (raw.baseAddress! + 4 * floats + 32 * subspaces + 4 * (hitSlots + pooled)).bindMemory(to: UInt16.self, capacity: hitSlots)

            for j in 0..<padded { q[j] = j < d ? query[j] : 0 }
            // A query with NaN or infinity has no meaningful neighbours (and would poison the tables).
            guard (0..<d).allSatisfy({ q[$0].isFinite }) else { return [] }
            if metric == .cosine {
                let norm = VectorMath.normSquared(q, d).squareRoot()
                if norm > 0 { for j in 0..<d { q[j] /= norm } }
            }
            // The cells to visit, best first.
            centroidBlocks.withUnsafeBufferPointer { blocks in
                for block in 0..<cellSlots / 16 {
                    VectorMath.blockScores16(blocks.baseAddress! + block * d * 16, query: q, dimension: d, into: cellScores + block * 16)
                }
            }
            let cells = TopK.select(UnsafeBufferPointer(start: cellScores, count: partitionCount), k: probe)

            // Per-query tables: 16 entries per subspace, shifted to start at 0 and scaled to 8 bits.
            let (scale, biasTotal) = bookColumns.withUnsafeBufferPointer {
                VectorMath.codeTables4(query: q, columns: $0.baseAddress!, subspaces: subspaces, width: width,
                                       ceiling: Self.tableCeiling(subspaces: subspaces), rows: floatTables, tables: tables)
            }

            // Approximate scores, cell by cell, into a pool up to eight times the shortlist, cut back to
            // the shortlist after each cell or when full; the shortlist's worst score is the bar that
            // the scan itself applies (a heap push per hit cost more than the scan).
            var pool = Shortlist(scores: exact, positions: candidates, capacity: pooled, keep: shortlist)
            let everything = filter.admitsEverything
            for cell in cells {
                let partition = Int(cell.id)
                let first = Int(starts[partition]), size = Int(starts[partition + 1]) - first
                guard size > 0 else { continue }
                let base = cell.score + biasTotal
                var threshold: Int32 = -1
                if pool.bar > -.infinity {
                    let bar = ((pool.bar - base) * scale).rounded(.down)
                    if bar >= 32_767 { continue }
                    threshold = bar < -1 ? -1 : Int32(bar)
                }
                let hits = VectorMath.scanCodes4(codes + blockStarts[partition] * pairs * 32, blocks: blockStarts[partition + 1] - blockStarts[partition],
                                                 pairs: pairs, tables: tables, threshold: threshold, limit: size, positions: positions, sums: sums)
                let inverseScale = 1 / scale
                for hit in 0..<hits {
                    let position = first + Int(positions[hit])
                    if !everything, filter.rejects(Int(rows[position])) { continue }
                    pool.offer(base + Float(sums[hit]) * inverseScale, UInt32(position))
                }
                // The best cells come first, so a bar set now already turns most later rows away in the scan.
                _ = pool.finish()
            }

            // Exact scores for the shortlist.
            let found = pool.finish()
            // The shortlist's rows are scattered over the file: ask for all of them before scoring any,
            // so their cache misses overlap instead of queueing one row at a time.
            let rowBytes = 4 * d
            for slot in 0..<found {
                let row = UnsafeRawPointer(vectors + Int(candidates[slot]) * d)
                for line in stride(from: 0, to: rowBytes, by: 64) { duet_prefetch(row + line) }
                duet_prefetch(rows + Int(candidates[slot]))
            }
            VectorMath.scoreGathered(q, base: UnsafeRawPointer(vectors), stride: 4 * d, ids: candidates, count: found, dimension: d, into: exact)
            var best = TopK(k)
            for slot in 0..<found { best.push(exact[slot], Int32(bitPattern: rows[Int(candidates[slot])])) }
            return best.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
        }
    }

    /// Exactly the best `k` of `rows` (that `filter` admits), scored from the stored vectors.
    public func scan<Filter: SearchFilter>(_ query: UnsafePointer<Float>, rows selected: [Int32], k: Int, filter: Filter) -> [Neighbour] {
        let d = dimension
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: d) { q in
            for j in 0..<d { q[j] = query[j] }
            if metric == .cosine {
                let norm = VectorMath.normSquared(q.baseAddress!, d).squareRoot()
                if norm > 0 { for j in 0..<d { q[j] /= norm } }
            }
            var heap = TopK(k)
            for row in selected where row >= 0 && Int(row) < count && !filter.rejects(Int(row)) {
                heap.push(VectorMath.dot(q.baseAddress!, vector(of: Int(row)), d), row)
            }
            return heap.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
        }
    }

    /// The inner product of two stored rows: their cosine in a cosine index.
    public func storedSimilarity(_ a: Int, _ b: Int) -> Float {
        guard (0..<count).contains(a), (0..<count).contains(b) else { return 0 }
        return VectorMath.dot(vector(of: a), vector(of: b), dimension)
    }
}

/// The best `keep` of many (score, position) offers, in caller-provided memory: offers above the bar
/// are appended; when the pool is full, it keeps its best `keep` and their worst score becomes the bar.
struct Shortlist {
    let scores: UnsafeMutablePointer<Float>
    let positions: UnsafeMutablePointer<UInt32>
    let capacity: Int
    let keep: Int
    private(set) var count = 0
    private(set) var bar: Float = -.infinity

    init(scores: UnsafeMutablePointer<Float>, positions: UnsafeMutablePointer<UInt32>, capacity: Int, keep: Int) {
        self.scores = scores
        self.positions = positions
        self.capacity = max(capacity, keep + 1)
        self.keep = keep
    }

    @inline(__always)
    mutating func offer(_ score: Float, _ position: UInt32) {
        guard score > bar else { return }
        scores[count] = score
        positions[count] = position
        count += 1
        if count == capacity { shrink() }
    }

    /// Keeps the best `keep`, in no particular order, and raises the bar to their worst; returns how many remain.
    mutating func finish() -> Int {
        if count > keep { shrink() }
        return count
    }

    /// The best `keep` end up in 0..<keep; their lowest score is the new bar.
    private mutating func shrink() {
        bar = duet_select_highest(scores, positions, count, keep)
        count = keep
    }
}

/// Memory the index was built into, freed with the index.
final class OwnedBytes: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(count: Int) {
        buffer = .allocate(byteCount: count, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }
    deinit { buffer.deallocate() }
}
