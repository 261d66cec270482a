import DuetKernels
import Foundation

/// Exact top-k inner products that usually reads a few per cent of the rows: rows are visited in
/// order of decreasing norm, and the scan stops once Cauchy–Schwarz (q·x ≤ ‖q‖·‖x‖) proves that no
/// row left can enter the top k (the length-based pruning of LEMP, Teflioudi et al., SIGMOD 2015).
///
/// Matrix-factorisation item vectors have heavy-tailed norms (popular items are long), so a
/// user's best items sit among the longest rows: on a 64-factor ALS model of 64k items the scan
/// stopped after a median of ~1,000 rows. The answer equals a full scan's, ties included (TopK
/// breaks ties by id, whatever the visiting order).
///
/// The longest rows are copied in norm order so the common scan streams through contiguous memory
/// that stays in cache; rows beyond that prefix are read in place.
public final class NormOrderedScan: @unchecked Sendable {
    public let count: Int
    public let dimension: Int
    /// Original row ids, longest first.
    private let order: [Int32]
    /// ‖row‖ in that order, each raised by the float32 rounding the dot product may add.
    private let bounds: UnsafeMutableBufferPointer<Float>
    /// The longest rows in order, row-major: the exact scores come from here.
    private let sortedPrefix: UnsafeMutableBufferPointer<Float>
    /// The same rows in blocks of 16, each stored value-major (16 rows' first values, then their
    /// second, …): sixteen scores are then `dimension` fused multiply-adds with no horizontal sums,
    /// which screens a block several times faster than sixteen dot products.
    private let blocked: UnsafeMutableBufferPointer<Float>
    private let prefixRows: Int
    private let rows: UnsafePointer<Float>
    private let owner: AnyObject?
    static let lanes = 16

    /// `owner` keeps the memory behind `vectors` alive (a mapped file, or nil for static memory).
    /// `copiedRows` bounds the sorted copies (two, of 4·dimension bytes a row); rows past them are
    /// scanned in place.
    public init(vectors: UnsafeBufferPointer<Float>, dimension: Int, owner: AnyObject?, copiedRows: Int = 1 << 15) {
        precondition(dimension > 0, "a scan needs a dimension")
        self.dimension = dimension
        count = vectors.count / dimension
        self.owner = owner
        rows = vectors.baseAddress!
        let base = rows
        let norms = (0..<count).map { VectorMath.normSquared(base + $0 * dimension, dimension).squareRoot() }
        // Longest first; NaN norms last (their rows can never be pruned soundly, so the scan reaches them).
        let sorted = (0..<count).sorted { a, b in
            let (x, y) = (norms[a], norms[b])
            if x.isNaN || y.isNaN { return !x.isNaN && y.isNaN }
            return x != y ? x > y : a < b
        }
        order = sorted.map { Int32($0) }
        // A computed dot product can exceed ‖q‖·‖x‖ by its rounding, at most (d + 8)·2⁻²⁴ of it.
        let slack: Float = 1 + Float(dimension + 8) * 0x1p-23
        bounds = .allocate(capacity: max(1, count))
        for (position, row) in sorted.enumerated() {
            let norm = norms[row]
            bounds[position] = norm.isNaN ? Float.infinity : norm * slack
        }
        // Whole blocks only, unless the copy holds every row (the last block is then padded).
        let lanes = Self.lanes
        prefixRows = count <= copiedRows ? count : max(0, copiedRows) / lanes * lanes
        sortedPrefix = .allocate(capacity: max(1, prefixRows * dimension))
        let blockCount = (prefixRows + lanes - 1) / lanes
        blocked = .allocate(capacity: max(1, blockCount * lanes * dimension))
        blocked.initialize(repeating: 0)
        for position in 0..<prefixRows {
            let source = base + sorted[position] * dimension
            (sortedPrefix.baseAddress! + position * dimension).update(from: source, count: dimension)
            let block = blocked.baseAddress! + (position / lanes) * lanes * dimension
            for j in 0..<dimension { block[j * lanes + position % lanes] = source[j] }
        }
    }

    deinit {
        sortedPrefix.deallocate()
        blocked.deallocate()
        bounds.deallocate()
    }

    /// The exact top k by inner product, best first, or nil when more than `rowLimit` rows would
    /// have to be read to prove it (the caller then asks an approximate index instead).
    public func search(_ query: UnsafePointer<Float>, k: Int, excluding excluded: ExclusionSet = .none,
                       rowLimit: Int = .max) -> [Neighbour]? {
        guard k > 0 else { return [] }
        let d = dimension, lanes = Self.lanes
        let queryNorm = VectorMath.normSquared(query, d).squareRoot()
        // The screening score and the exact one each carry at most (d + 8)·2⁻²⁴·‖q‖·‖x‖ of rounding.
        let screeningError = 2 * Float(d + 8) * 0x1p-24 * queryNorm
        let checkExclusions = !excluded.isEmpty
        var heap = TopK(k)
        var position = 0
        @inline(__always) func offer(_ row: Int, _ start: UnsafePointer<Float>) {
            let id = order[row]
            if checkExclusions, excluded.contains(Int(id)) { return }
            // Scored like every other scan (same kernel, same order), so the answer is bit-for-bit theirs.
            heap.push(VectorMath.dot(start, query, d), id)
        }
        // The screening loop runs in the C kernels, returning only at blocks with candidates or at a stop.
        // On the stack: this runs for every recommendation, and an array would be a heap allocation each time.
        var scores = SIMD16<Float>()
        while position < count {
            let (heapFull, threshold) = (heap.count == k, heap.threshold)
            let (stopped, outcome) = withUnsafeMutableBytes(of: &scores) { out in
                VectorMath.screenBlocks(blocked.baseAddress!, query: query, dimension: d, bounds: bounds.baseAddress!, from: position,
                                        count: count, prefixRows: prefixRows, rowLimit: rowLimit, heapFull: heapFull,
                                        threshold: threshold, queryNorm: queryNorm, screeningError: screeningError,
                                        scores: out.baseAddress!.assumingMemoryBound(to: Float.self))
            }
            position = stopped
            switch outcome {
            case .proven, .end:
                position = count
            case .rowLimit:
                return nil
            case .endOfPrefix:
                for row in position..<min(position + lanes, count) { offer(row, rows + Int(order[row]) * d) }
                position += lanes
            case .candidates:
                // Strictly below the floor cannot win; at or above, the exact score decides.
                let slack = screeningError * bounds[position]
                let floor = slack.isFinite ? heap.threshold - slack : -Float.infinity
                for lane in 0..<lanes where (scores[lane] >= floor || floor.isNaN) && position + lane < count {
                    offer(position + lane, sortedPrefix.baseAddress! + (position + lane) * d)
                }
                position += lanes
            }
        }
        return heap.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
    }

    public func search(_ query: [Float], k: Int, excluding excluded: ExclusionSet = .none, rowLimit: Int = .max) -> [Neighbour]? {
        precondition(query.count == dimension, "query has \(query.count) values, the scan has dimension \(dimension)")
        return query.withUnsafeBufferPointer { search($0.baseAddress!, k: k, excluding: excluded, rowLimit: rowLimit) }
    }
}
