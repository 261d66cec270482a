public import CDuetIntrinsics
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
/// The rows are screened in int8: each row is stored as 8-bit integers with its own scale, in blocks
/// of 16 rows, and a query is rounded the same way. The integer dot products are exact; the
/// rounding of each side is bounded (‖q − q̂‖·‖x‖ + ‖q̂‖·‖x − x̂‖, with each row's rounding error
/// stored), so a row is scored in float32 only when its screened score plus that bound reaches the
/// k-th best exact score so far. A block is 1 KiB at 64 dimensions where float32 took 4 KiB, which
/// keeps the rows a scan reads in the L2 cache while a server's network stack shares the core.
///
/// The longest rows are also copied in float32, in norm order, so the exact scores of the common
/// candidates come from contiguous memory; rows beyond that prefix are scored in place.
public final class NormOrderedScan: @unchecked Sendable {
    public let count: Int
    public let dimension: Int
    /// Original row ids, longest first.
    private let order: UnsafeMutableBufferPointer<Int32>
    /// ‖row‖ in that order, each raised by the float32 rounding the dot product may add; zero for the
    /// padding that fills the last block.
    private let bounds: UnsafeMutableBufferPointer<Float>
    /// The longest rows in order, row-major: the exact scores come from here.
    private let sortedPrefix: UnsafeMutableBufferPointer<Float>
    private let prefixRows: Int
    /// Every row as int8 (see `duet_i8_scan`), with each row's scale and rounding error.
    private let codes: UnsafeMutableBufferPointer<UInt8>
    private let scales: UnsafeMutableBufferPointer<Float>
    private let errors: UnsafeMutableBufferPointer<Float>
    private let groups: Int
    private let screening: duet_i8_screen_fn
    private let rows: UnsafePointer<Float>
    private let owner: AnyObject?
    static let lanes = 16
    /// Past this, a row's 32-bit integer sum of (x8 + 128)·q8 could overflow: rows are then all scored exactly.
    static let screenableDimension = 1 << 16

    /// `owner` keeps the memory behind `vectors` alive (a mapped file, or nil for static memory).
    /// `copiedRows` bounds the sorted float32 copy (4·dimension bytes a row); rows past it are scored
    /// in place. `screening` is a variant of the int8 screening, for tests; the default is the CPU's.
    public init(vectors: UnsafeBufferPointer<Float>, dimension: Int, owner: AnyObject?, copiedRows: Int = 1 << 15,
                screening: duet_i8_screen_fn? = nil) {
        precondition(dimension > 0, "a scan needs a dimension")
        self.dimension = dimension
        self.screening = screening ?? VectorMath.int8Screening
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
        order = .allocate(capacity: max(1, count))
        for (position, row) in sorted.enumerated() { order[position] = Int32(row) }
        let lanes = Self.lanes
        let padded = (count + lanes - 1) / lanes * lanes
        // A computed dot product can exceed ‖q‖·‖x‖ by its rounding, at most (d + 8)·2⁻²⁴ of it.
        let slack: Float = 1 + Float(dimension + 8) * 0x1p-23
        bounds = .allocate(capacity: max(lanes, padded))
        bounds.initialize(repeating: 0)
        for (position, row) in sorted.enumerated() {
            let norm = norms[row]
            bounds[position] = norm.isNaN ? Float.infinity : norm * slack
        }
        prefixRows = min(count, max(0, copiedRows))
        sortedPrefix = .allocate(capacity: max(1, prefixRows * dimension))
        for position in 0..<prefixRows {
            (sortedPrefix.baseAddress! + position * dimension).update(from: base + sorted[position] * dimension, count: dimension)
        }
        groups = (dimension + 3) / 4
        codes = .allocate(capacity: max(64, padded * groups * 4))
        // 128 is the stored form of 0: the padding adds nothing to a sum.
        codes.initialize(repeating: 128)
        scales = .allocate(capacity: max(lanes, padded))
        scales.initialize(repeating: 0)
        errors = .allocate(capacity: max(lanes, padded))
        errors.initialize(repeating: 0)
        for (position, row) in sorted.enumerated() {
            let values = UnsafeBufferPointer(start: base + row * dimension, count: dimension)
            let largest = values.reduce(Float(0)) { max($0, abs($1)) }
            guard values.allSatisfy(\.isFinite), dimension <= Self.screenableDimension else {
                // Its screened score is then unbounded, so it is always scored exactly.
                errors[position] = .infinity
                continue
            }
            guard largest > 0 else { continue }
            let scale = largest / 127
            let block = codes.baseAddress! + (position / lanes) * groups * 64 + (position % lanes) * 4
            var residual = 0.0
            for j in 0..<dimension {
                let level = max(-127, min(127, (values[j] / scale).rounded()))
                block[(j / 4) * 64 + j % 4] = UInt8(Int(level) + 128)
                let difference = Double(values[j]) - Double(scale) * Double(level)
                residual += difference * difference
            }
            scales[position] = scale
            errors[position] = Float(residual.squareRoot()).nextUp
        }
    }

    deinit {
        order.deallocate()
        sortedPrefix.deallocate()
        codes.deallocate()
        scales.deallocate()
        errors.deallocate()
        bounds.deallocate()
    }

    /// The exact top k by inner product, best first, or nil when more than `rowLimit` rows would
    /// have to be read to prove it (the caller then asks an approximate index instead).
    public func search(_ query: UnsafePointer<Float>, k: Int, excluding excluded: ExclusionSet = .none,
                       rowLimit: Int = .max) -> [Neighbour]? {
        guard k > 0 else { return [] }
        // On the stack: this runs for every recommendation, and an array would be a heap allocation each time.
        return withUnsafeTemporaryAllocation(of: Int8.self, capacity: groups * 4) { levels -> [Neighbour]? in
            var query8 = quantize(query, into: levels)
            var scan = duet_i8_scan(blocks: codes.baseAddress!, scales: scales.baseAddress!, errors: errors.baseAddress!,
                                    bounds: bounds.baseAddress!, groups: groups, count: count)
            return withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { scores in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: k) { ids in
                    excluded.withWords { words in
                        // Scored with the same dot product as every other scan, so the answer is bit-for-bit theirs.
                        var rescore = duet_i8_rescore(query: query, order: order.baseAddress!, prefix: sortedPrefix.baseAddress!,
                                                      prefix_rows: prefixRows, rows: rows, dimension: dimension,
                                                      excluded: words.baseAddress, excluded_words: words.count,
                                                      dot: duet_kernels().pointee.dot)
                        let found = duet_i8_top_k(&scan, &query8, &rescore, screening, k, rowLimit, scores.baseAddress!, ids.baseAddress!)
                        guard found >= 0 else { return nil }
                        return (0..<found).map { Neighbour(id: Int(ids[$0]), score: scores[$0]) }
                    }
                }
            }
        }
    }

    /// Rounds the query to int8 (`levels`) and returns what the screening needs to bound its error.
    private func quantize(_ query: UnsafePointer<Float>, into levels: UnsafeMutableBufferPointer<Int8>) -> duet_i8_query {
        let d = dimension
        levels.initialize(repeating: 0)
        var largest: Float = 0, finite = true
        for j in 0..<d {
            largest = max(largest, abs(query[j]))
            finite = finite && query[j].isFinite
        }
        let scale = finite && largest > 0 ? largest / 127 : 0
        var sum = 0, rounded = 0.0, residual = 0.0, normSquared = 0.0
        for j in 0..<d where scale > 0 {
            let level = max(-127, min(127, (query[j] / scale).rounded()))
            levels[j] = Int8(level)
            sum += Int(level)
            let approximation = Double(scale) * Double(level)
            rounded += approximation * approximation
            residual += (Double(query[j]) - approximation) * (Double(query[j]) - approximation)
        }
        for j in 0..<d { normSquared += Double(query[j]) * Double(query[j]) }
        // The computed exact score may exceed q·x by (d + 8)·2⁻²⁴·‖q‖·‖x‖; each weight is raised a
        // little more for its own rounding. A query that is not finite screens nothing out.
        let raise = 1 + 0x1p-16
        let exactRounding = Double(d + 8) * 0x1p-24 * normSquared.squareRoot()
        let errorWeight = finite ? Float(rounded.squareRoot() * raise).nextUp : .infinity
        let lengthWeight = finite ? Float((residual.squareRoot() + exactRounding) * raise).nextUp : .infinity
        return duet_i8_query(q8: UnsafePointer(levels.baseAddress!), scale: scale, correction: Int32(128 * sum),
                             error_weight: errorWeight, length_weight: lengthWeight, relative_weight: 16 * 0x1p-24,
                             norm: Float(normSquared.squareRoot()))
    }

    public func search(_ query: [Float], k: Int, excluding excluded: ExclusionSet = .none, rowLimit: Int = .max) -> [Neighbour]? {
        precondition(query.count == dimension, "query has \(query.count) values, the scan has dimension \(dimension)")
        return query.withUnsafeBufferPointer { search($0.baseAddress!, k: k, excluding: excluded, rowLimit: rowLimit) }
    }
}
