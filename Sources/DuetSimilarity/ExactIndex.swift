import DuetKernels
import Foundation

/// Brute-force top-k over every row: exact, the reference for recall, and the right choice for
/// small catalogues. Rows are contiguous float32, read in place (e.g. from a memory-mapped bundle).
public struct ExactIndex: @unchecked Sendable {
    public let vectors: UnsafeBufferPointer<Float>
    public let count: Int
    public let dimension: Int
    public let metric: SimilarityMetric
    private let owner: AnyObject?
    /// For cosine: 1/‖row‖, so rows need not be normalised on disk.
    private let inverseNorms: [Float]

    /// `owner` keeps the memory behind `vectors` alive (a mapped file, or nil for static memory).
    public init(vectors: UnsafeBufferPointer<Float>, dimension: Int, metric: SimilarityMetric, owner: AnyObject?) {
        self.vectors = vectors
        self.dimension = dimension
        self.count = dimension > 0 ? vectors.count / dimension : 0
        self.metric = metric
        self.owner = owner
        if metric == .cosine {
            let base = vectors.baseAddress!
            inverseNorms = (0..<(vectors.count / max(dimension, 1))).map { row in
                let norm = VectorMath.normSquared(base + row * dimension, dimension).squareRoot()
                return norm > 0 ? 1 / norm : 0
            }
        } else {
            inverseNorms = []
        }
    }

    /// Copies `vectors` into storage the index owns.
    public init(copying vectors: [Float], dimension: Int, metric: SimilarityMetric) {
        let storage = FloatStorage(vectors)
        self.init(vectors: storage.buffer, dimension: dimension, metric: metric, owner: storage)
    }

    public func search(_ query: UnsafePointer<Float>, k: Int, excluding excluded: ExclusionSet = .none) -> [Neighbour] {
        var heap = TopK(k)
        let base = vectors.baseAddress!
        let d = dimension
        let scale: Float = metric == .cosine ? 1 / max(VectorMath.normSquared(query, d).squareRoot(), 1e-30) : 1
        let checkExclusions = !excluded.isEmpty
        for row in 0..<count {
            var score = VectorMath.dot(base + row * d, query, d)
            if metric == .cosine { score *= inverseNorms[row] * scale }
            if score > heap.threshold || heap.count < heap.capacity {
                if checkExclusions, excluded.contains(row) { continue }
                heap.push(score, Int32(row))
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
