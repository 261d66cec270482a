import DuetCore
import DuetKernels
import Testing

@Suite struct KernelTests {
    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float(rng.gaussian()) }
    }

    @Test(arguments: [1, 7, 16, 33, 64, 100])
    func dotAxpyAndMatvecMatchNaiveLoops(n: Int) {
        let a = Self.random(n, seed: 1), b = Self.random(n, seed: 2)
        let naive = zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        let fast = VectorMath.dot(a, b, n)
        #expect(abs(fast - naive) <= 1e-4 * max(1, abs(naive)))

        var y = b
        y.withUnsafeMutableBufferPointer { VectorMath.axpy(0.5, a, $0.baseAddress!, n) }
        for i in 0..<n { #expect(abs(y[i] - (b[i] + 0.5 * a[i])) < 1e-5) }

        // Symmetric matrix, as YᵀY is.
        var matrix = Self.random(n * n, seed: 3)
        for i in 0..<n { for j in 0..<i { matrix[i * n + j] = matrix[j * n + i] } }
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { VectorMath.matvec(matrix, a, $0.baseAddress!, n) }
        for i in 0..<n {
            let expected = (0..<n).reduce(Float(0)) { $0 + matrix[i * n + $1] * a[$1] }
            #expect(abs(out[i] - expected) <= 1e-3 * max(1, abs(expected)))
        }
    }

    @Test func gramMatchesNaiveProduct() {
        let rows = 300, d = 20
        let y = Self.random(rows * d, seed: 4)
        let gram = y.withUnsafeBufferPointer { Gram.compute($0, rows: rows, dimension: d, ridge: 0.5, threads: 2) }
        for i in 0..<d {
            for j in 0..<d {
                var expected: Float = i == j ? 0.5 : 0
                for r in 0..<rows { expected += y[r * d + i] * y[r * d + j] }
                #expect(abs(gram[i * d + j] - expected) <= 1e-3 * max(1, abs(expected)))
            }
        }
    }

    @Test func conjugateGradientConvergesToTheCholeskySolution() throws {
        // A = YᵀY + λI + Σ (c − 1) y yᵀ over the observed rows; b = Σ c·y.
        let d = 8, items = 40, lambda: Float = 0.3
        let y = Self.random(items * d, seed: 5)
        let observed: [UInt32] = [1, 4, 9, 17, 33]
        let confidences: [Float] = [3, 1.5, 8, 2, 5]
        let gram = y.withUnsafeBufferPointer { Gram.compute($0, rows: items, dimension: d, ridge: lambda) }
        var a = gram
        var b = [Float](repeating: 0, count: d)
        for (item, c) in zip(observed, confidences) {
            for i in 0..<d {
                b[i] += c * y[Int(item) * d + i]
                for j in 0..<d { a[i * d + j] += (c - 1) * y[Int(item) * d + i] * y[Int(item) * d + j] }
            }
        }
        let exact = try #require(Solvers.cholesky(a, b, d))
        var x = [Float](repeating: 0, count: d)
        let scratch = Solvers.Scratch(dimension: d)
        x.withUnsafeMutableBufferPointer { xs in
            Solvers.implicitALSStep(x: xs.baseAddress!, gram: gram, factors: y, items: observed, confidences: confidences,
                                    count: observed.count, dimension: d, steps: 3 * d, scratch: scratch)
        }
        for i in 0..<d { #expect(abs(x[i] - exact[i]) < 1e-3, "x[\(i)] = \(x[i]) vs \(exact[i])") }
        // Cholesky itself: A·x = b.
        for i in 0..<d {
            let row = (0..<d).reduce(Float(0)) { $0 + a[i * d + $1] * exact[$1] }
            #expect(abs(row - b[i]) < 1e-3)
        }
        #expect(Solvers.cholesky([1, 2, 2, 1], [1, 1], 2) == nil, "indefinite matrices are refused")
    }

    @Test func topKMatchesSortingAndHonoursExclusions() {
        let scores = Self.random(1_000, seed: 6)
        let excluded = Set(stride(from: 0, to: 1_000, by: 7))
        let top = scores.withUnsafeBufferPointer { TopK.select($0, k: 10) { excluded.contains($0) } }
        let expected = scores.enumerated().filter { !excluded.contains($0.offset) }.sorted { $0.element > $1.element }.prefix(10)
        #expect(top.map { Int($0.id) } == expected.map(\.offset))
        #expect(top.allSatisfy { !excluded.contains(Int($0.id)) })
        let ties: [Float] = [1, 3, 3, 2, 3]
        #expect(ties.withUnsafeBufferPointer { TopK.select($0, k: 2) }.map(\.id) == [1, 2], "ties go to the smaller id")
    }

    @Test func chunksVisitEveryIndexOnce() {
        let hits = ResultSlots<Int>(count: 1_000)
        Parallel.chunks(1_000, threads: 2, chunk: 17) { range, worker in
            for index in range { hits[index] = (hits[index] ?? 0) + 1 + worker * 0 }
        }
        #expect((0..<1_000).allSatisfy { hits[$0] == 1 })
    }
}
