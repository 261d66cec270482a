/// The Gram matrix YᵀY of a row-major `rows × dimension` matrix, the shared term of every ALS solve.
public enum Gram {
    /// Returns YᵀY (+ `ridge`·I) as a row-major `dimension × dimension` matrix. Work is split over
    /// row blocks, one partial sum per thread, added in a fixed order so results do not depend on timing.
    public static func compute(_ matrix: UnsafeBufferPointer<Float>, rows: Int, dimension d: Int,
                               ridge: Float = 0, threads: Int = 1) -> [Float] {
        let workers = max(1, min(threads, rows / 1_024 + 1))
        var partials = [[Float]](repeating: [Float](repeating: 0, count: d * d), count: workers)
        let base = matrix.baseAddress!
        partials.withUnsafeMutableBufferPointer { slots in
            let slotsPointer = UnsafeMutableSendablePointer(slots.baseAddress!)
            let source = UnsafeSendablePointer(base)
            Parallel.forEach(workers, threads: workers) { worker in
                let start = rows * worker / workers
                let end = rows * (worker + 1) / workers
                slotsPointer.pointer[worker].withUnsafeMutableBufferPointer { out in
                    let target = out.baseAddress!
                    for row in start..<end {
                        let y = source.pointer + row * d
                        // Upper triangle only; mirrored below.
                        for i in 0..<d where y[i] != 0 {
                            VectorMath.axpy(y[i], y + i, target + i * d + i, d - i)
                        }
                    }
                }
            }
        }
        var result = partials[0]
        for worker in 1..<workers {
            for index in 0..<(d * d) { result[index] += partials[worker][index] }
        }
        for i in 0..<d {
            result[i * d + i] += ridge
            for j in 0..<i { result[i * d + j] = result[j * d + i] }
        }
        return result
    }
}
