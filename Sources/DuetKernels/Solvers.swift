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
    /// YᵀY + λI, and only the row's observed items add the (c − 1) correction.
    @inlinable
    public static func implicitALSStep(x: UnsafeMutablePointer<Float>, gram: UnsafePointer<Float>, factors y: UnsafePointer<Float>,
                                       items: UnsafePointer<UInt32>, confidences: UnsafePointer<Float>, count: Int,
                                       dimension d: Int, steps: Int, scratch: borrowing Scratch) {
        let r = scratch.r, p = scratch.p, ap = scratch.ap
        // r = b − A·x
        VectorMath.matvec(gram, x, r, d)
        for j in 0..<d { r[j] = -r[j] }
        for entry in 0..<count {
            let c = confidences[entry]
            let row = y + Int(items[entry]) * d
            VectorMath.axpy(c - (c - 1) * VectorMath.dot(row, x, d), row, r, d)
        }
        p.update(from: r, count: d)
        var rsOld = VectorMath.normSquared(r, d)
        if rsOld < 1e-20 { return }
        for _ in 0..<steps {
            VectorMath.matvec(gram, p, ap, d)
            for entry in 0..<count {
                let c = confidences[entry]
                let row = y + Int(items[entry]) * d
                VectorMath.axpy((c - 1) * VectorMath.dot(row, p, d), row, ap, d)
            }
            let alpha = rsOld / VectorMath.dot(p, ap, d)
            VectorMath.axpy(alpha, p, x, d)
            VectorMath.axpy(-alpha, ap, r, d)
            let rsNew = VectorMath.normSquared(r, d)
            if rsNew < 1e-20 { break }
            let beta = rsNew / rsOld
            for j in 0..<d { p[j] = r[j] + beta * p[j] }
            rsOld = rsNew
        }
    }
}
