public import CDuetIntrinsics

/// Dense float32 kernels over raw pointers. Rows are contiguous and row-major; callers keep
/// allocation out of the loops that call these. The arithmetic lives in C (`CDuetIntrinsics`),
/// compiled once per instruction set (AVX-512, AVX2 + FMA, the baseline) and chosen once per process
/// from what the CPU reports, so one portable binary runs at the machine's speed. Every kernel that
/// scores a row uses the same dot product, so a row scores bit for bit the same through each of them.
public enum VectorMath {
    /// The kernel variant this process uses: "avx512", "avx2" or "baseline".
    public static var variant: String { String(cString: duet_kernels().pointee.name) }

    /// Σ a[i]·b[i]
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        duet_kernels().pointee.dot(a, b, count)
    }

    /// y += alpha·x
    @inlinable
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        duet_kernels().pointee.axpy(alpha, x, y, count)
    }

    /// out = A·v for a square `count × count` row-major A that is symmetric (YᵀY), computed as
    /// Σₖ v[k]·A[k, :] a 16-lane strip at a time, so no horizontal sums are needed.
    @inlinable
    public static func matvec(_ matrix: UnsafePointer<Float>, _ vector: UnsafePointer<Float>,
                              _ out: UnsafeMutablePointer<Float>, _ count: Int) {
        duet_kernels().pointee.matvec(matrix, vector, out, count)
    }

    /// Squared Euclidean norm.
    @inlinable
    public static func normSquared(_ a: UnsafePointer<Float>, _ count: Int) -> Float { dot(a, a, count) }

    /// scores[r] = rows[r]·query for `rowCount` rows of `dimension` floats.
    @inlinable
    public static func scoreRows(_ rows: UnsafePointer<Float>, rowCount: Int, dimension: Int,
                                 query: UnsafePointer<Float>, into scores: UnsafeMutablePointer<Float>) {
        duet_kernels().pointee.score_rows(rows, rowCount, dimension, query, scores)
    }

    /// out[i] = query·row(ids[i]) for rows that start `stride` bytes apart from `base`: one call
    /// for all the neighbours an HNSW expansion scores.
    @inlinable
    public static func scoreGathered(_ query: UnsafePointer<Float>, base: UnsafeRawPointer, stride: Int, ids: UnsafePointer<UInt32>,
                                     count: Int, dimension: Int, into out: UnsafeMutablePointer<Float>) {
        duet_kernels().pointee.score_gather(query, base.assumingMemoryBound(to: UInt8.self), stride, ids, count, dimension, out)
    }

    /// Which int8 screening this process uses: "vnni", "avx2" or "portable".
    public static var int8ScreeningName: String {
        let screening = unsafeBitCast(int8Screening, to: UnsafeRawPointer.self)
        for name in ["vnni", "avx2", "portable"] {
            if let variant = duet_i8_screen_variant(name), unsafeBitCast(variant, to: UnsafeRawPointer.self) == screening { return name }
        }
        return "unknown"
    }

    /// The int8 screening of the length-ordered scan (see `NormOrderedScan`), in the variant that
    /// matches `variant`: AVX-512 VNNI when the CPU has it and the widest variant is in use, then
    /// AVX2, then portable C. All give the same bits.
    public static let int8Screening: duet_i8_screen_fn = {
        switch variant {
        case "baseline": duet_i8_screen_variant("portable")!
        case "avx2": duet_i8_screen_variant("avx2") ?? duet_i8_screen_variant("portable")!
        default: duet_i8_screen_variant(nil)!
        }
    }()

    /// scores[r] = rows[r]·query for rows stored as IEEE binary16 bit patterns.
    @inlinable
    public static func scoreHalfRows(_ rows: UnsafePointer<UInt16>, rowCount: Int, dimension: Int,
                                     query: UnsafePointer<Float>, into scores: UnsafeMutablePointer<Float>) {
        duet_kernels().pointee.score_rows_f16(rows, rowCount, dimension, query, scores)
    }

    /// Sixteen rows' scores at once from a value-major block (`block[j·16 + lane]` is row lane's value j).
    @inlinable
    public static func blockScores16(_ block: UnsafePointer<Float>, query: UnsafePointer<Float>, dimension: Int,
                                     into out: UnsafeMutablePointer<Float>) {
        duet_kernels().pointee.block_scores16(block, query, dimension, out)
    }

    /// The 4-bit product-quantization scan (layout in kernels.c): the rows below `limit` of `blocks`
    /// blocks whose summed table entries exceed `threshold`, as (position, sum); returns how many.
    @inlinable
    public static func scanCodes4(_ codes: UnsafePointer<UInt8>, blocks: Int, pairs: Int, tables: UnsafePointer<UInt8>, threshold: Int32,
                                  limit: Int, positions: UnsafeMutablePointer<UInt32>, sums: UnsafeMutablePointer<UInt16>) -> Int {
        duet_kernels().pointee.pq4_scan(codes, blocks, pairs, tables, threshold, limit, positions, sums)
    }

    /// The byte tables `scanCodes4` reads, from the query and the codebooks' columns (16 centres per
    /// value): each subspace shifted to start at 0, all scaled so the widest spans `ceiling`.
    /// Returns the scale and the shifts' sum, which map a scan's sums back to scores.
    @inlinable
    public static func codeTables4(query: UnsafePointer<Float>, columns: UnsafePointer<Float>, subspaces: Int, width: Int, ceiling: Float,
                                   rows: UnsafeMutablePointer<Float>, tables: UnsafeMutablePointer<UInt8>) -> (scale: Float, bias: Float) {
        var bias: Float = 0
        let scale = duet_kernels().pointee.pq4_tables(query, columns, subspaces, width, ceiling, rows, tables, &bias)
        return (scale, bias)
    }
}
