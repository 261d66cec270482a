public import CDuetIntrinsics
/// Linear solvers for the small dense systems of ALS.
public enum Solvers {
    /// Solves A·x = b for symmetric positive-definite A (`n × n`, row-major) by Cholesky
    /// factorisation, in double precision. Returns nil when A is not positive definite.
    public static func cholesky(_ matrix: [Float], _ rhs: [Float], _ n: Int) -> [Float]? {
        var l = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0...i {
                var sum = Double(matrix[i * n + j])
                for k in 0..<j { sum -= l[i * n + k] * l[j * n + k] }
                if i == j {
                    guard sum > 0 else { return nil }
                    l[i * n + i] = sum.squareRoot()
                } else {
                    l[i * n + j] = sum / l[j * n + j]
                }
            }
        }
        var y = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var sum = Double(rhs[i])
            for k in 0..<i { sum -= l[i * n + k] * y[k] }
            y[i] = sum / l[i * n + i]
        }
        var x = [Double](repeating: 0, count: n)
        for i in stride(from: n - 1, through: 0, by: -1) {
            var sum = y[i]
            for k in (i + 1)..<n { sum -= l[k * n + i] * x[k] }
            x[i] = sum / l[i * n + i]
        }
        return x.map(Float.init)
    }

    /// Per-thread buffers for `implicitALSStep`, allocated once per thread.
    public struct Scratch: ~Copyable {
        public let r: UnsafeMutablePointer<Float>
        public let p: UnsafeMutablePointer<Float>
        public let ap: UnsafeMutablePointer<Float>

        public init(dimension: Int) {
            r = .allocate(capacity: dimension)
            p = .allocate(capacity: dimension)
            ap = .allocate(capacity: dimension)
        }

        deinit {
            r.deallocate()
            p.deallocate()
            ap.deallocate()
        }
    }

    /// One row of implicit-feedback ALS by conjugate gradient, warm-started from `x`
    /// (Takács, Pilászy & Tikk, "Applications of the conjugate gradient method for implicit
    /// feedback collaborative filtering", RecSys 2011; as implicit's CPU solver does it).
    ///
    /// Solves (YᵀY + λI + Yᵀ(Cᵤ − I)Y)·x = YᵀCᵤp(u) without forming the per-row matrix: `gram` is
    /// YᵀY + λI, and only the row's observed items add the (c − 1) correction. The loop runs in C, in
    /// the kernel variant this CPU takes (see `VectorMath`).
    @inlinable
    public static func implicitALSStep(x: UnsafeMutablePointer<Float>, gram: UnsafePointer<Float>, factors y: UnsafePointer<Float>,
                                       items: UnsafePointer<UInt32>, confidences: UnsafePointer<Float>, count: Int,
                                       dimension d: Int, steps: Int, scratch: borrowing Scratch) {
        duet_kernels().pointee.implicit_als_step(x, gram, y, items, confidences, count, d, steps, scratch.r, scratch.p, scratch.ap)
    }
}
