/// Dense float32 kernels over raw pointers. Rows are contiguous and row-major; callers keep
/// allocation out of the loops that call these. Sixteen lanes at a time with two accumulators,
/// which the compiler maps onto AVX2/AVX-512 registers when built for x86-64-v3. Products are
/// accumulated with explicit fused multiply-adds: Swift does not contract `a += b * c` by itself.
public enum VectorMath {
    @inlinable @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>, _ offset: Int) -> SIMD16<Float> {
        UnsafeRawPointer(pointer + offset).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inlinable @inline(__always)
    static func store(_ value: SIMD16<Float>, _ pointer: UnsafeMutablePointer<Float>, _ offset: Int) {
        UnsafeMutableRawPointer(pointer + offset).storeBytes(of: value, as: SIMD16<Float>.self)
    }

    /// The lanes' sum as a tree of halves: four vector adds deep. `SIMD.sum()` adds the lanes one
    /// after another (sixteen dependent scalar adds), which dominated short dot products.
    @inlinable @inline(__always)
    public static func horizontalSum(_ value: SIMD16<Float>) -> Float {
        let eight = value.lowHalf + value.highHalf
        let four = eight.lowHalf + eight.highHalf
        let two = four.lowHalf + four.highHalf
        return two.x + two.y
    }

    /// Σ a[i]·b[i]
    @inlinable
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var first = SIMD16<Float>(), second = SIMD16<Float>()
        var index = 0
        while index + 32 <= count {
            first.addProduct(load(a, index), load(b, index))
            second.addProduct(load(a, index + 16), load(b, index + 16))
            index += 32
        }
        if index + 16 <= count {
            first.addProduct(load(a, index), load(b, index))
            index += 16
        }
        var total = horizontalSum(first + second)
        while index < count {
            total += a[index] * b[index]
            index += 1
        }
        return total
    }

    /// y += alpha·x
    @inlinable
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
        let scale = SIMD16<Float>(repeating: alpha)
        var index = 0
        while index + 16 <= count {
            store(load(UnsafePointer(y), index) + scale * load(x, index), y, index)
            index += 16
        }
        while index < count {
            y[index] += alpha * x[index]
            index += 1
        }
    }

    /// out = A·v for a square `count × count` row-major A that is symmetric (YᵀY), computed as
    /// Σₖ v[k]·A[k, :] a 16-lane strip at a time, so no horizontal sums are needed.
    @inlinable
    public static func matvec(_ matrix: UnsafePointer<Float>, _ vector: UnsafePointer<Float>,
                              _ out: UnsafeMutablePointer<Float>, _ count: Int) {
        var strip = 0
        while strip + 32 <= count {
            var first = SIMD16<Float>(), second = SIMD16<Float>()
            for k in 0..<count {
                let scale = SIMD16<Float>(repeating: vector[k])
                let row = matrix + k * count + strip
                first += scale * load(row, 0)
                second += scale * load(row, 16)
            }
            store(first, out, strip)
            store(second, out, strip + 16)
            strip += 32
        }
        while strip + 16 <= count {
            var accumulator = SIMD16<Float>()
            for k in 0..<count { accumulator += SIMD16<Float>(repeating: vector[k]) * load(matrix + k * count + strip, 0) }
            store(accumulator, out, strip)
            strip += 16
        }
        while strip < count {
            var total: Float = 0
            for k in 0..<count { total += vector[k] * matrix[k * count + strip] }
            out[strip] = total
            strip += 1
        }
    }

    /// Squared Euclidean norm.
    @inlinable
    public static func normSquared(_ a: UnsafePointer<Float>, _ count: Int) -> Float { dot(a, a, count) }

    /// scores[r] = rows[r]·query for `rowCount` rows of `dimension` floats.
    @inlinable
    public static func scoreRows(_ rows: UnsafePointer<Float>, rowCount: Int, dimension: Int,
                                 query: UnsafePointer<Float>, into scores: UnsafeMutablePointer<Float>) {
        for row in 0..<rowCount { scores[row] = dot(rows + row * dimension, query, dimension) }
    }
}
