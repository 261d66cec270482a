import DuetKernels
import Foundation

/// Brute-force top-k over every row: exact, the reference for recall, and the right choice for
/// small catalogues. Rows are contiguous float32, read in place (e.g. from a memory-mapped bundle).
///
/// A scan reads every row, so its speed is the memory bandwidth. The index therefore keeps a
/// half-precision copy of the rows and scans that (half the bytes), with a proven bound on how far
/// each approximate score can be from the float32 one; every row that could still be in the top k
/// is then rescored in float32. The answer is exactly the float32 answer.
public struct ExactIndex: @unchecked Sendable {
    public let vectors: UnsafeBufferPointer<Float>
    public let count: Int
    public let dimension: Int
    public let metric: SimilarityMetric
    private let owner: AnyObject?
    /// For cosine: 1/‖row‖, so rows need not be normalised on disk.
    private let inverseNorms: [Float]
    /// ‖row‖, for the error bound of the half-precision pass.
    private let norms: [Float]
    private let largestNorm: Float
    /// Nil when a value does not fit in Float16 (or the platform has no Float16): scan float32 only.
    private let halves: HalfRows?

    /// `owner` keeps the memory behind `vectors` alive (a mapped file, or nil for static memory).
    /// `halfPrecision` adds the Float16 copy (2 bytes per value) that makes a scan about twice as fast.
    public init(vectors: UnsafeBufferPointer<Float>, dimension: Int, metric: SimilarityMetric, owner: AnyObject?,
                halfPrecision: Bool = true) {
        self.vectors = vectors
        self.dimension = dimension
        self.count = dimension > 0 ? vectors.count / dimension : 0
        self.metric = metric
        self.owner = owner
        let base = vectors.baseAddress!
        let rowCount = count
        norms = (0..<rowCount).map { VectorMath.normSquared(base + $0 * dimension, dimension).squareRoot() }
        largestNorm = norms.max() ?? 0
        inverseNorms = metric == .cosine ? norms.map { $0 > 0 ? 1 / $0 : 0 } : []
        halves = halfPrecision && dimension > 0 && rowCount > 0 ? HalfRows(vectors) : nil
    }

    /// The same rows under another metric, sharing the norms and the Float16 copy.
    public init(sameRowsAs other: ExactIndex, metric: SimilarityMetric) {
        vectors = other.vectors
        dimension = other.dimension
        count = other.count
        self.metric = metric
        owner = other.owner
        norms = other.norms
        largestNorm = other.largestNorm
        inverseNorms = metric == .cosine ? norms.map { $0 > 0 ? 1 / $0 : 0 } : []
        halves = other.halves
    }

    /// Copies `vectors` into storage the index owns.
    public init(copying vectors: [Float], dimension: Int, metric: SimilarityMetric, halfPrecision: Bool = true) {
        let storage = FloatStorage(vectors)
        self.init(vectors: storage.buffer, dimension: dimension, metric: metric, owner: storage, halfPrecision: halfPrecision)
    }

    public func search(_ query: UnsafePointer<Float>, k: Int, excluding excluded: ExclusionSet = .none) -> [Neighbour] {
        search(query, k: k, filter: excluded)
    }

    public func search<Filter: SearchFilter>(_ query: UnsafePointer<Float>, k: Int, filter excluded: Filter) -> [Neighbour] {
        let d = dimension
        let queryNorm = VectorMath.normSquared(query, d).squareRoot()
        let scale: Float = metric == .cosine ? 1 / max(queryNorm, 1e-30) : 1
        guard let halves, k > 0, queryNorm.isFinite else { return searchFloat32(query, k: k, scale: scale, excluded: excluded) }
        // |q·x − q·x̃| ≤ ‖q‖·‖x‖·2⁻¹¹ from rounding x to Float16, plus a subnormal term, plus the
        // float32 rounding of both sums (≤ (d + 8)·2⁻²⁴·‖q‖·‖x‖ each, with 32 lanes summed in a tree).
        let relative = Float(0x1p-11) + 2 * Float(d + 8) * Float(0x1p-24)
        let absolute = Float(d) * Float(0x1p-24) * queryNorm
        func bound(_ row: Int) -> Float {
            let raw = relative * queryNorm * norms[row] + absolute
            return metric == .cosine ? raw * inverseNorms[row] * scale : raw
        }
        let largestBound = metric == .cosine
            ? relative + absolute * scale * (inverseNorms.max() ?? 0)
            : relative * queryNorm * largestNorm + absolute

        let checkExclusions = !excluded.admitsEverything
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { approximate in
            let scores = approximate.baseAddress!
            halves.scoreRows(query, dimension: d, into: scores)
            if metric == .cosine { for row in 0..<count { scores[row] *= inverseNorms[row] * scale } }
            var heap = TopK(k)
            for row in 0..<count where scores[row] >= heap.threshold {
                if checkExclusions, excluded.rejects(row) { continue }
                heap.push(scores[row], Int32(row))
            }
            guard heap.count == min(k, count) else { return searchFloat32(query, k: k, scale: scale, excluded: excluded) }
            // The true k-th score is at least (k-th approximate − largest bound); only rows whose
            // approximate score plus their own bound reaches that can be in the answer.
            let floor = heap.threshold - largestBound
            var exact = TopK(k)
            let base = vectors.baseAddress!
            for row in 0..<count where scores[row] + bound(row) >= floor {
                if checkExclusions, excluded.rejects(row) { continue }
                var score = VectorMath.dot(base + row * d, query, d)
                if metric == .cosine { score *= inverseNorms[row] * scale }
                exact.push(score, Int32(row))
            }
            return exact.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
        }
    }

    /// The float32 scan alone: a block of rows scored with nothing but dot products, then offered
    /// to the heap, so the arithmetic pipelines without the heap's branches in between.
    func searchFloat32<Filter: SearchFilter>(_ query: UnsafePointer<Float>, k: Int, scale: Float, excluded: Filter) -> [Neighbour] {
        var heap = TopK(k)
        let base = vectors.baseAddress!
        let d = dimension
        let checkExclusions = !excluded.admitsEverything
        let block = 256
        withUnsafeTemporaryAllocation(of: Float.self, capacity: block) { scores in
            let scores = scores.baseAddress!
            var start = 0
            while start < count {
                let rows = min(block, count - start)
                VectorMath.scoreRows(base + start * d, rowCount: rows, dimension: d, query: query, into: scores)
                if metric == .cosine {
                    for offset in 0..<rows { scores[offset] *= inverseNorms[start + offset] * scale }
                }
                for offset in 0..<rows where scores[offset] >= heap.threshold {
                    let row = start + offset
                    if checkExclusions, excluded.rejects(row) { continue }
                    heap.push(scores[offset], Int32(row))
                }
                start += rows
            }
        }
        return heap.sorted().map { Neighbour(id: Int($0.id), score: $0.score) }
    }

    public func search(_ query: [Float], k: Int, excluding excluded: ExclusionSet = .none) -> [Neighbour] {
        query.withUnsafeBufferPointer { search($0.baseAddress!, k: k, excluding: excluded) }
    }

    /// Many queries (row-major), spread over threads: for offline jobs.
    public func searchBatch(_ queries: [Float], k: Int, threads: Int) -> [[Neighbour]] {
        let queryCount = queries.count / max(dimension, 1)
        let results = ResultSlots<[Neighbour]>(count: queryCount)
        queries.withUnsafeBufferPointer { buffer in
            let pointer = UnsafeSendablePointer(buffer.baseAddress!)
            Parallel.chunks(queryCount, threads: threads, chunk: 8) { range, _ in
                for query in range { results[query] = search(pointer.pointer + query * dimension, k: k) }
            }
        }
        return (0..<queryCount).map { results[$0] ?? [] }
    }
}

/// The rows in Float16: half the bytes for the scan to stream.
final class HalfRows: @unchecked Sendable {
    #if !(os(macOS) && arch(x86_64))
    let values: UnsafeMutableBufferPointer<Float16>

    /// Nil when a value is too large for Float16 (or not finite).
    init?(_ vectors: UnsafeBufferPointer<Float>) {
        guard vectors.allSatisfy({ $0.isFinite && abs($0) < 60_000 }) else { return nil }
        values = .allocate(capacity: vectors.count)
        for index in vectors.indices { values[index] = Float16(vectors[index]) }
    }

    deinit { values.deallocate() }

    func scoreRows(_ query: UnsafePointer<Float>, dimension d: Int, into scores: UnsafeMutablePointer<Float>) {
        let rows = values.count / d
        UnsafeRawPointer(values.baseAddress!).withMemoryRebound(to: UInt16.self, capacity: values.count) { bits in
            VectorMath.scoreHalfRows(bits, rowCount: rows, dimension: d, query: query, into: scores)
        }
    }
    #else
    init?(_ vectors: UnsafeBufferPointer<Float>) { return nil }
    func scoreRows(_ query: UnsafePointer<Float>, dimension d: Int, into scores: UnsafeMutablePointer<Float>) {}
    #endif
}

/// Heap storage for floats that an index owns.
final class FloatStorage: @unchecked Sendable {
    let pointer: UnsafeMutableBufferPointer<Float>
    let count: Int
    init(_ values: [Float]) {
        count = values.count
        pointer = .allocate(capacity: max(values.count, 1))
        _ = pointer.initialize(from: values + (values.isEmpty ? [0] : []))
    }
    var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer.baseAddress, count: count) }
    deinit { pointer.deallocate() }
}
