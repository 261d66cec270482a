import CDuetIntrinsics
import Foundation
import DuetCore
import DuetKernels
import Testing

/// Every instruction-set variant this CPU can run (the baseline always) against a double-precision
/// reference, kernel by kernel, and the dispatch picks the widest one the CPU has.
@Suite struct KernelVariantTests {
    static let names = ["baseline", "avx2", "avx512"]

    static var available: [(String, duet_kernel_table)] {
        names.compactMap { name in duet_kernels_variant(name).map { (name, $0.pointee) } }
    }

    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float(rng.gaussian()) }
    }

    static func reference(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
        (0..<n).reduce(0.0) { $0 + Double(a[$1]) * Double(b[$1]) }
    }

    static func close(_ value: Float, _ expected: Double, scale: Double) -> Bool {
        abs(Double(value) - expected) <= 1e-4 * max(1, scale)
    }

    @Test func dispatchTakesTheWidestVariantTheCPUHas() throws {
        let widest = try #require(Self.available.last).0
        #expect(Self.available.first?.0 == "baseline")
        #expect(VectorMath.variant == widest || ProcessInfo.processInfo.environment["DUET_KERNELS"] != nil)
        #expect(duet_kernels_variant("sse9") == nil)
    }

    @Test(arguments: [1, 15, 16, 17, 33, 64, 100])
    func everyVariantScoresRowsLikeTheReference(d: Int) {
        let rows = 37
        let matrix = Self.random(rows * d, seed: 11), query = Self.random(d, seed: 12)
        for (name, table) in Self.available {
            matrix.withUnsafeBufferPointer { m in
                query.withUnsafeBufferPointer { q in
                    var scores = [Float](repeating: .nan, count: rows)
                    table.score_rows(m.baseAddress!, rows, d, q.baseAddress!, &scores)
                    for r in 0..<rows {
                        let expected = Self.reference(m.baseAddress! + r * d, q.baseAddress!, d)
                        #expect(Self.close(scores[r], expected, scale: abs(expected)), "\(name) row \(r)")
                        // One dot product behind every entry point: the same bits.
                        #expect(scores[r] == table.dot(m.baseAddress! + r * d, q.baseAddress!, d), "\(name) row \(r)")
                    }
                    // Rows 16 bytes of padding apart, gathered in a scrambled order (an HNSW expansion).
                    let stride = (d + 4) * 4
                    var padded = [Float](repeating: 1e30, count: rows * (d + 4))
                    for r in 0..<rows { for j in 0..<d { padded[r * (d + 4) + j] = m[r * d + j] } }
                    let ids: [UInt32] = [5, 0, 36, 17, 17, 2]
                    var gathered = [Float](repeating: .nan, count: ids.count)
                    padded.withUnsafeBytes { raw in
                        table.score_gather(q.baseAddress!, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), stride, ids, ids.count, d, &gathered)
                    }
                    for (slot, id) in ids.enumerated() { #expect(gathered[slot] == scores[Int(id)], "\(name) gathered \(id)") }
                    // Float16 rows: the reference is the dot of the rounded values.
                    let halves = matrix.map { Float16($0) }
                    let bits = halves.map(\.bitPattern)
                    var halfScores = [Float](repeating: .nan, count: rows)
                    table.score_rows_f16(bits, rows, d, q.baseAddress!, &halfScores)
                    for r in 0..<rows {
                        let expected = (0..<d).reduce(0.0) { $0 + Double(Float(halves[r * d + $1])) * Double(q[$1]) }
                        #expect(Self.close(halfScores[r], expected, scale: abs(expected)), "\(name) half row \(r)")
                    }
                }
            }
        }
    }

    @Test func everyVariantBlockScoresAxpyAndMatvec() {
        let d = 37
        let rowsMajor = Self.random(16 * d, seed: 21), query = Self.random(d, seed: 22)
        var block = [Float](repeating: 0, count: 16 * d)
        for lane in 0..<16 { for j in 0..<d { block[j * 16 + lane] = rowsMajor[lane * d + j] } }
        var symmetric = Self.random(d * d, seed: 23)
        for i in 0..<d { for j in 0..<i { symmetric[i * d + j] = symmetric[j * d + i] } }
        for (name, table) in Self.available {
            var out = [Float](repeating: .nan, count: 16)
            table.block_scores16(block, query, d, &out)
            for lane in 0..<16 {
                let expected = rowsMajor.withUnsafeBufferPointer { Self.reference($0.baseAddress! + lane * d, query, d) }
                #expect(Self.close(out[lane], expected, scale: abs(expected)), "\(name) lane \(lane)")
            }
            var y = query
            table.axpy(-0.25, rowsMajor, &y, d)
            for j in 0..<d { #expect(abs(Double(y[j]) - (Double(query[j]) - 0.25 * Double(rowsMajor[j]))) < 1e-5, "\(name) axpy \(j)") }
            var product = [Float](repeating: .nan, count: d)
            table.matvec(symmetric, query, &product, d)
            for i in 0..<d {
                let expected = symmetric.withUnsafeBufferPointer { Self.reference($0.baseAddress! + i * d, query, d) }
                #expect(Self.close(product[i], expected, scale: abs(expected)), "\(name) matvec \(i)")
            }
        }
    }

    /// The int8 screening: every variant sums exactly and raises each row's score to the same bits as
    /// a reference written here, and stops where it should (length bound, row limit, end).
    @Test(arguments: [1, 3, 4, 16, 17])
    func everyInt8ScreeningVariantSumsRaisesAndStopsLikeTheReference(groups: Int) {
        var rng = SplitMix64(seed: UInt64(groups))
        let count = 70, padded = 80
        let blocks = (0..<(padded / 16 * groups * 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let scales = (0..<padded).map { _ in Float(rng.uniform()) * 0.1 }
        let errors = (0..<padded).map { _ in Float(rng.uniform()) * 0.01 }
        // Not increasing, as the scan's rows are.
        let bounds = (0..<padded).map { Float(padded - $0) }
        let levels = (0..<(groups * 4)).map { _ in Int8(Int(rng.next() % 255) - 127) }
        let correction = Int32(128 * levels.reduce(0) { $0 + Int($1) })
        let variants = ([String](["portable", "avx2", "vnni"])).compactMap { name in duet_i8_screen_variant(name).map { (name, $0) } }
        #expect(variants.first?.0 == "portable")
        blocks.withUnsafeBufferPointer { codes in
            levels.withUnsafeBufferPointer { q8 in
                // Copies that outlive every call below (an array passed as a pointer lives for one call only).
                let scaleCopy = UnsafeMutableBufferPointer<Float>.allocate(capacity: padded), errorCopy = UnsafeMutableBufferPointer<Float>.allocate(capacity: padded)
                let boundCopy = UnsafeMutableBufferPointer<Float>.allocate(capacity: padded), nanScales = UnsafeMutableBufferPointer<Float>.allocate(capacity: padded)
                defer { [scaleCopy, errorCopy, boundCopy, nanScales].forEach { $0.deallocate() } }
                _ = scaleCopy.initialize(from: scales)
                _ = errorCopy.initialize(from: errors)
                _ = boundCopy.initialize(from: bounds)
                _ = nanScales.initialize(from: scales)
                nanScales[50] = .nan
                var scan = duet_i8_scan(blocks: codes.baseAddress!, scales: scaleCopy.baseAddress!, errors: errorCopy.baseAddress!,
                                        bounds: boundCopy.baseAddress!, groups: groups, count: count)
                var query = duet_i8_query(q8: q8.baseAddress!, scale: 0.02, correction: correction, error_weight: 1.5, length_weight: 0.003,
                                          relative_weight: 16 * 0x1p-24, norm: 2)
                // The reference: sums from the stored bytes (x8 + 128) and the same float steps in the same order.
                func raised(_ row: Int) -> Float {
                    var sum = 0
                    for j in 0..<(groups * 4) {
                        sum += Int(codes[(row / 16) * groups * 64 + (j / 4) * 64 + (row % 16) * 4 + j % 4]) * Int(levels[j])
                    }
                    let screened = Float(Int32(sum) - correction) * (scales[row] * query.scale)
                    let margin = (query.error_weight * errors[row] + query.length_weight * bounds[row]) + query.relative_weight * abs(screened)
                    return screened + margin
                }
                for (name, screen) in variants {
                    var upper = [Float](repeating: .nan, count: 16)
                    var outcome: Int32 = -1
                    for position in stride(from: 0, to: count, by: 16) {
                        // No bar: the block at `position` is returned with its raised scores.
                        let stopped = screen(&scan, &query, position, .max, 0, -.infinity, &upper, &outcome)
                        #expect(stopped == position && outcome == 0, "\(name) at \(position)")
                        for lane in 0..<16 { #expect(upper[lane].bitPattern == raised(position + lane).bitPattern, "\(name) row \(position + lane)") }
                    }
                    // A bar above every raised score: nothing is a candidate, and the scan reads to the end.
                    #expect(screen(&scan, &query, 0, .max, 0, 1e30, &upper, &outcome) == 80 && outcome == 4, "\(name)")
                    // The first block with a row reaching the bar.
                    let bar = raised(37)
                    let first = (0..<count).first { raised($0) >= bar }! / 16 * 16
                    #expect(screen(&scan, &query, 0, .max, 0, bar, &upper, &outcome) == first && outcome == 0, "\(name)")
                    // The length bound, with a bar no row reaches: norm·bounds[p] falls below it at the fourth block
                    // (bounds 80, 64, 48, 32 at the block starts), not before.
                    let above = (0..<padded).map(raised).max()! + 1
                    var bounded = query
                    bounded.norm = above / 40
                    #expect(screen(&scan, &bounded, 0, .max, 1, above, &upper, &outcome) == 48 && outcome == 1, "\(name)")
                    #expect(screen(&scan, &bounded, 0, .max, 0, above, &upper, &outcome) == 80 && outcome == 4, "\(name) without a full heap")
                    #expect(screen(&scan, &query, 0, 32, 0, 1e30, &upper, &outcome) == 32 && outcome == 2, "\(name)")
                    // A row whose bound is unknown (NaN scale) is always a candidate.
                    var withNaN = scan
                    withNaN.scales = UnsafePointer(nanScales.baseAddress!)
                    #expect(screen(&withNaN, &query, 0, .max, 0, 1e30, &upper, &outcome) == 48 && outcome == 0, "\(name)")
                    #expect(upper[2].isNaN, "\(name)")
                }
            }
        }
    }

    /// The conjugate-gradient ALS step converges to the solution of its normal equations in every variant.
    @Test func everyVariantSolvesTheImplicitALSSystem() {
        let d = 20, itemCount = 50
        let factors = Self.random(itemCount * d, seed: 31)
        var gram = [Float](repeating: 0, count: d * d)
        for r in 0..<itemCount { for i in 0..<d { for j in 0..<d { gram[i * d + j] += factors[r * d + i] * factors[r * d + j] } } }
        for i in 0..<d { gram[i * d + i] += 0.1 }
        let items: [UInt32] = [3, 9, 27, 44], confidences: [Float] = [5, 2, 9, 3]
        // The full matrix A = gram + Σ (c − 1)·y yᵀ and b = Σ c·y, solved in double precision.
        var a = gram.map(Double.init), b = [Double](repeating: 0, count: d)
        for (item, c) in zip(items, confidences) {
            let row = Int(item) * d
            for i in 0..<d {
                b[i] += Double(c) * Double(factors[row + i])
                for j in 0..<d { a[i * d + j] += Double(c - 1) * Double(factors[row + i]) * Double(factors[row + j]) }
            }
        }
        for (name, table) in Self.available {
            var x = [Float](repeating: 0, count: d), r = x, p = x, ap = x
            table.implicit_als_step(&x, gram, factors, items, confidences, items.count, d, 60, &r, &p, &ap)
            for i in 0..<d {
                let residual = (0..<d).reduce(-b[i]) { $0 + a[i * d + $1] * Double(x[$1]) }
                #expect(abs(residual) < 1e-2 * max(1, abs(b[i])), "\(name) residual \(i) = \(residual)")
            }
        }
    }

    /// The 4-bit scan against sums taken row by row: every row's sum, thresholds that keep all, some
    /// and none, and a limit inside the last block.
    @Test(arguments: [1, 2, 5, 32])
    func everyVariantScansFourBitCodesLikeTheReference(pairs: Int) {
        var rng = SplitMix64(seed: UInt64(pairs))
        let blocks = 5, limit = 4 * 32 + 7
        let codes = (0..<(blocks * pairs * 32)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        var tables = [UInt8](repeating: 0, count: 2 * pairs * 32)
        for subspace in 0..<(2 * pairs) {
            for entry in 0..<16 {
                let value = UInt8(rng.next() % 256)
                tables[subspace * 32 + entry] = value
                tables[subspace * 32 + 16 + entry] = value
            }
        }
        var expected: [(UInt32, UInt16)] = []
        for row in 0..<limit {
            let block = row / 32, lane = row % 32
            var sum = 0
            for pair in 0..<pairs {
                let byte = Int(codes[(block * pairs + pair) * 32 + lane])
                sum += Int(tables[2 * pair * 32 + (byte & 15)]) + Int(tables[(2 * pair + 1) * 32 + (byte >> 4)])
            }
            expected.append((UInt32(row), UInt16(sum)))
        }
        let median = Int(expected.map(\.1).sorted()[limit / 2])
        for (name, table) in Self.available {
            for threshold in [-1, median, 32_767] {
                var positions = [UInt32](repeating: 0, count: blocks * 32), sums = [UInt16](repeating: 0, count: blocks * 32)
                let hits = table.pq4_scan(codes, blocks, pairs, tables, Int32(threshold), limit, &positions, &sums)
                let wanted = expected.filter { Int($0.1) > threshold }
                #expect(hits == wanted.count, "\(name) threshold \(threshold)")
                #expect(zip(positions.prefix(hits), sums.prefix(hits)).map { [$0.0, UInt32($0.1)] } == wanted.map { [$0.0, UInt32($0.1)] },
                        "\(name) threshold \(threshold)")
            }
        }
    }

    /// The per-query tables against the same arithmetic done value by value: each subspace's lowest
    /// entry 0, the widest at the ceiling, both 16-byte halves equal, the shifts summed into the bias.
    /// A fused multiply-add may round an entry across a half, so bytes may differ by one.
    @Test(arguments: [1, 2])
    func everyVariantBuildsTheCodeTablesLikeTheReference(width: Int) {
        var rng = SplitMix64(seed: UInt64(40 + width))
        let subspaces = 24, ceiling: Float = 255
        let query = (0..<(subspaces * width)).map { _ in Float(rng.uniform() * 2 - 1) }
        let columns = (0..<(subspaces * width * 16)).map { _ in Float(rng.uniform() * 0.4 - 0.2) }
        var rows = [[Float]](repeating: [], count: subspaces), bias: Float = 0, widest: Float = 0
        for subspace in 0..<subspaces {
            let scores = (0..<16).map { centre in
                (0..<width).reduce(Float(0)) { $0 + query[subspace * width + $1] * columns[(subspace * width + $1) * 16 + centre] }
            }
            let low = scores.min()!
            bias += low
            rows[subspace] = scores.map { $0 - low }
            widest = max(widest, rows[subspace].max()!)
        }
        let scale = ceiling / widest
        for (name, table) in Self.available {
            var floats = [Float](repeating: 0, count: subspaces * 16), bytes = [UInt8](repeating: 0, count: subspaces * 32), gotBias: Float = 0
            let gotScale = table.pq4_tables(query, columns, subspaces, width, ceiling, &floats, &bytes, &gotBias)
            #expect(abs(gotScale - scale) <= 1e-4 * scale, "\(name): scale \(gotScale) vs \(scale)")
            #expect(abs(gotBias - bias) <= 1e-4, "\(name): bias \(gotBias) vs \(bias)")
            var largestGap = 0, lowest = 255, highest = 0
            for subspace in 0..<subspaces {
                #expect(bytes[(subspace * 32)..<(subspace * 32 + 16)] == bytes[(subspace * 32 + 16)..<(subspace * 32 + 32)], "\(name) subspace \(subspace)")
                let entries = bytes[(subspace * 32)..<(subspace * 32 + 16)].map(Int.init)
                lowest = min(lowest, entries.min()!)
                highest = max(highest, entries.max()!)
                for centre in 0..<16 {
                    largestGap = max(largestGap, abs(entries[centre] - Int((rows[subspace][centre] * scale + 0.5).rounded(.down))))
                }
            }
            #expect(largestGap <= 1 && lowest == 0 && highest == 255, "\(name): off by \(largestGap), range \(lowest)…\(highest)")
        }
    }

    /// The shortlist's cut: the `keep` highest scores at the front with their own ids, on random,
    /// tied, ascending and descending input; the returned bar is the lowest kept score.
    @Test func selectionKeepsTheHighestScoresWithTheirIds() {
        var rng = SplitMix64(seed: 77)
        let count = 300
        let inputs: [[Float]] = [
            (0..<count).map { _ in Float(rng.uniform()) },
            (0..<count).map { _ in Float(rng.next() % 7) },
            (0..<count).map(Float.init),
            (0..<count).map { Float(count - $0) },
        ]
        for (shape, input) in inputs.enumerated() {
            for keep in [1, 2, 40, count / 2, count - 1] {
                var scores = input, ids = (0..<UInt32(count)).map { $0 }
                let bar = duet_select_highest(&scores, &ids, count, keep)
                let wanted = input.sorted(by: >).prefix(keep)
                #expect(scores.prefix(keep).sorted(by: >) == Array(wanted), "shape \(shape), keep \(keep)")
                #expect(bar == wanted.last!, "shape \(shape), keep \(keep)")
                #expect(zip(scores, ids).allSatisfy { input[Int($0.1)] == $0.0 }, "ids travel with their scores")
                #expect(Set(ids).count == count, "nothing lost or doubled")
            }
        }
    }
}
