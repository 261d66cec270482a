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
    private let bounds: [Float]
    private let sortedPrefix: UnsafeMutableBufferPointer<Float>
    private let prefixRows: Int
    private let rows: UnsafePointer<Float>
    private let owner: AnyObject?
    private static let block = 32

    /// `owner` keeps the memory behind `vectors` alive (a mapped file, or nil for static memory).
    /// `copiedRows` bounds the sorted copy; rows past it are scanned in place.
    public init(vectors: UnsafeBufferPointer<Float>, dimension: Int, owner: AnyObject?, copiedRows: Int = 1 << 16) {
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
        bounds = sorted.map { row -> Float in
            let norm = norms[row]
            return norm.isNaN ? Float.infinity : norm * slack
        }
        prefixRows = min(count, max(0, copiedRows))
        sortedPrefix = .allocate(capacity: max(1, prefixRows * dimension))
        for position in 0..<prefixRows {
            (sortedPrefix.baseAddress! + position * dimension).update(from: base + sorted[position] * dimension, count: dimension)
        }
    }

    deinit { sortedPrefix.deallocate() }

    /// The exact top k by inner product, best first, or nil when more than `rowLimit` rows would
    /// have to be read to prove it (the caller then asks an approximate index instead).
    public func search(_ query: UnsafePointer<Float>, k: Int, excluding excluded: ExclusionSet = .none,
                       rowLimit: Int = .max) -> [Neighbour]? {
        guard k > 0 else { return [] }
        let d = dimension
        let queryNorm = VectorMath.normSquared(query, d).squareRoot()
        let checkExclusions = !excluded.isEmpty
        var heap = TopK(k)
        var position = 0
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.block) { scores -> [Neighbour]? in
            let scores = scores.baseAddress!
            while position < count {
                // Strictly below: a row scoring exactly the threshold could still win its tie by id.
                if heap.count == k, queryNorm * bounds[position] < heap.threshold { break }
                if position >= rowLimit { return nil }
                let rowsInBlock = min(Self.block, count - position)
                if position + rowsInBlock <= prefixRows {
                    VectorMath.scoreRows(sortedPrefix.baseAddress! + position * d, rowCount: rowsInBlock, dimension: d,
                                         query: query, into: scores)
                } else {
                    for offset in 0..<rowsInBlock {
                        let row = position + offset
                        let start: UnsafePointer<Float> = row < prefixRows
                            ? UnsafePointer(sortedPrefix.baseAddress! + row * d)
                            : rows + Int(order[row]) * d
                        scores[offset] = VectorMath.dot(start, query, d)
                    }
                }
                for offset in 0..<rowsInBlock where scores[offset] >= heap.threshold {
                    let id = order[position + offset]
                    if checkExclusions, excluded.contains(Int(id)) { continue }
                    heap.push(scores[offset], id)
                }
                position += rowsInBlock
            }
            return heap.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
        }
    }

    public func search(_ query: [Float], k: Int, excluding excluded: ExclusionSet = .none, rowLimit: Int = .max) -> [Neighbour]? {
        precondition(query.count == dimension, "query has \(query.count) values, the scan has dimension \(dimension)")
        return query.withUnsafeBufferPointer { search($0.baseAddress!, k: k, excluding: excluded, rowLimit: rowLimit) }
    }
}
