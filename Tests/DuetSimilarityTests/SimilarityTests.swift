import CDuetIntrinsics
import DuetCore
import DuetKernels
@testable import DuetSimilarity
import DuetTestSupport
import Foundation
import Testing

@Suite struct SimilarityTests {
    /// Unit vectors around `clusters` random centres, as peers.py builds its benchmark set.
    static func clustered(count: Int, dimension: Int, clusters: Int = 100, spread: Float = 0.35, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        let centres = (0..<(clusters * dimension)).map { _ in Float(rng.gaussian()) }
        var out = [Float](repeating: 0, count: count * dimension)
        for row in 0..<count {
            let centre = rng.below(clusters)
            var norm: Float = 0
            for j in 0..<dimension {
                let value = centres[centre * dimension + j] + spread * Float(rng.gaussian())
                out[row * dimension + j] = value
                norm += value * value
            }
            for j in 0..<dimension { out[row * dimension + j] /= norm.squareRoot() }
        }
        return out
    }

    static func naive(_ vectors: [Float], _ query: [Float], dimension d: Int, k: Int, excluded: Set<Int> = []) -> [Int] {
        naive(vectors, query, dimension: d, k: k) { excluded.contains($0) }
    }

    /// The k highest inner products, ties to the lower row: every row scored in order, kept in a
    /// k-long sorted list. Plain loops over buffers, because these tests run in debug builds, where a
    /// closure per multiply and a full sort per query cost most of the suite's time.
    static func naive(_ vectors: [Float], _ query: [Float], dimension d: Int, k: Int, excluding: (Int) -> Bool) -> [Int] {
        var best: [(row: Int, score: Float)] = []
        best.reserveCapacity(k + 1)
        vectors.withUnsafeBufferPointer { rows in
            query.withUnsafeBufferPointer { q in
                for row in 0..<(rows.count / d) where !excluding(row) {
                    var score: Float = 0
                    for j in 0..<d { score += rows[row * d + j] * q[j] }
                    // Rows arrive in ascending order, so an equal score never displaces a kept row.
                    if best.count == k, score <= best[k - 1].score { continue }
                    var position = best.count
                    while position > 0, best[position - 1].score < score { position -= 1 }
                    best.insert((row, score), at: position)
                    if best.count > k { best.removeLast() }
                }
            }
        }
        return best.map(\.row)
    }

    @Test func exactMatchesANaiveScan() {
        let d = 24
        let all = Self.clustered(count: 3_020, dimension: d, seed: 1)
        let vectors = Array(all[0..<(3_000 * d)])
        let queries = Array(all[(3_000 * d)...])
        let index = ExactIndex(copying: vectors, dimension: d, metric: .innerProduct)
        for q in 0..<20 {
            let query = Array(queries[(q * d)..<((q + 1) * d)])
            let excluded: Set<Int> = [q, q + 100, 2_999]
            let fast = index.search(query, k: 10, excluding: ExclusionSet(capacity: 3_000, excluding: excluded)).map(\.id)
            #expect(fast == Self.naive(vectors, query, dimension: d, k: 10, excluded: excluded))
        }
        let batch = index.searchBatch(Array(queries[0..<(4 * d)]), k: 5, threads: 2)
        #expect(batch.count == 4 && batch[0].map(\.id) == Array(Self.naive(vectors, Array(queries[0..<d]), dimension: d, k: 5)))
        // Cosine on unnormalised rows equals inner product on normalised ones.
        let scaled = vectors.enumerated().map { $0.element * Float(1 + $0.offset / d % 7) }
        let cosine = ExactIndex(copying: scaled, dimension: d, metric: .cosine)
        let query = Array(queries[0..<d])
        #expect(cosine.search(query, k: 10).map(\.id) == Self.naive(vectors, query, dimension: d, k: 10))
    }

    /// The half-precision first pass must not change a single answer: same ids, same float32
    /// scores, as the plain float32 scan, with exclusions, unnormalised rows and odd dimensions.
    @Test(arguments: [(64, SimilarityMetric.innerProduct), (64, .cosine), (24, .innerProduct), (40, .cosine)])
    func halfPrecisionPassKeepsTheExactAnswer(dimension d: Int, metric: SimilarityMetric) {
        var rng = SplitMix64(seed: UInt64(d))
        // Rows scaled 1…8× so the per-row error bounds differ; many near-ties inside clusters.
        let vectors = Self.clustered(count: 4_000, dimension: d, clusters: 20, spread: 0.2, seed: 11).enumerated().map {
            $0.element * Float(1 + ($0.offset / d) % 8)
        }
        let index = ExactIndex(copying: vectors, dimension: d, metric: metric)
        for q in 0..<60 {
            let query = (0..<d).map { _ in Float(rng.gaussian()) * 3 }
            let excluded = ExclusionSet(capacity: 4_000, excluding: (0..<4_000).filter { ($0 + q) % 11 == 0 })
            let scale: Float = metric == .cosine ? 1 / VectorMath.normSquared(query, d).squareRoot() : 1
            let plain = query.withUnsafeBufferPointer { index.searchFloat32($0.baseAddress!, k: 25, scale: scale, excluded: excluded) }
            #expect(index.search(query, k: 25, excluding: excluded) == plain, "query \(q)")
        }
        // Sharing the rows under the other metric gives what a fresh index gives.
        let other: SimilarityMetric = metric == .cosine ? .innerProduct : .cosine
        let shared = ExactIndex(sameRowsAs: index, metric: other)
        let fresh = ExactIndex(copying: vectors, dimension: d, metric: other, halfPrecision: false)
        let probe = (0..<d).map { Float($0 % 7) - 3 }
        #expect(shared.search(probe, k: 15) == fresh.search(probe, k: 15))
        // Values beyond Float16's range fall back to the float32 scan and stay exact.
        let hugeRows = vectors.map { $0 * 100_000 }
        let huge = ExactIndex(copying: hugeRows, dimension: d, metric: metric)
        let query = (0..<d).map { Float($0 % 5) - 2 }
        // Cosine ranks rows as the inner product with the rows normalised.
        let truthRows = metric == .innerProduct ? hugeRows : (0..<4_000).flatMap { row -> [Float] in
            let slice = hugeRows[(row * d)..<((row + 1) * d)]
            let norm = slice.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return slice.map { $0 / norm }
        }
        #expect(huge.search(query, k: 5).map(\.id) == Self.naive(truthRows, query, dimension: d, k: 5))
    }

    @Test func hnswRecallFilteringPersistenceAndConcurrency() async throws {
        let d = 16, count = 20_000, queryCount = 200
        // Queries come from the same clusters as the data, as real queries do.
        let all = Self.clustered(count: count + queryCount, dimension: d, spread: 0.5, seed: 3)
        let vectors = Array(all[0..<(count * d)])
        let queries = Array(all[(count * d)...])
        let index = try vectors.withUnsafeBufferPointer {
            try HNSWIndex.build($0, dimension: d, metric: .innerProduct, parameters: HNSWParameters(m: 12, efConstruction: 80, mipsReduction: false))
        }
        var hits = 0
        var truths: [[Int]] = []
        var results: [[Int]] = []
        for q in 0..<queryCount {
            let query = Array(queries[(q * d)..<((q + 1) * d)])
            let truth = Self.naive(vectors, query, dimension: d, k: 10)
            let found = index.search(query, k: 10, ef: 64).map(\.id)
            truths.append(truth)
            results.append(found)
            hits += Set(truth).intersection(found).count
        }
        let recall = Double(hits) / Double(queryCount * 10)
        #expect(recall >= 0.95, "recall@10 at ef=64 is \(recall)")

        // Filtered search never returns an excluded id, and still finds the best of the rest.
        var filteredHits = 0
        for q in 0..<50 {
            let query = Array(queries[(q * d)..<((q + 1) * d)])
            let excluded = Set(truths[q].prefix(5) + (0..<count).filter { $0 % 3 == 0 })
            let found = index.search(query, k: 10, ef: 96, excluding: ExclusionSet(capacity: count, excluding: excluded)).map(\.id)
            #expect(found.allSatisfy { !excluded.contains($0) })
            filteredHits += Set(Self.naive(vectors, query, dimension: d, k: 10, excluded: excluded)).intersection(found).count
        }
        #expect(Double(filteredHits) / 500 >= 0.9)

        // Save → memory-map → identical results.
        try await withScratchFolder { folder in
            let file = folder.appendingPathComponent("items.hnsw")
            try index.write(to: file)
            let loaded = try HNSWIndex(contentsOf: file.path)
            for q in 0..<queryCount {
                let query = Array(queries[(q * d)..<((q + 1) * d)])
                #expect(loaded.search(query, k: 10, ef: 64).map(\.id) == results[q])
            }
        }

        // Many readers at once give what one reader gives.
        let shared = index
        let concurrent = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for q in 0..<queryCount {
                group.addTask {
                    let query = Array(queries[(q * d)..<((q + 1) * d)])
                    return (q, shared.search(query, k: 10, ef: 64).map(\.id))
                }
            }
            var all = [[Int]](repeating: [], count: queryCount)
            for try await (q, ids) in group { all[q] = ids }
            return all
        }
        #expect(concurrent == results)
    }

    @Test func buildIsDeterministicForASeed() throws {
        let d = 8
        let vectors = Self.clustered(count: 2_000, dimension: d, seed: 5)
        let a = try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: d, metric: .cosine, parameters: HNSWParameters(m: 8, efConstruction: 40)) }
        let b = try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: d, metric: .cosine, parameters: HNSWParameters(m: 8, efConstruction: 40)) }
        #expect(Array(a.bytes) == Array(b.bytes))
        #expect(throws: DuetError.self) { try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: 7, metric: .cosine) } }
    }

    @Test func multiThreadedBuildMakesAValidGraphWithTheSameRecall() async throws {
        let d = 16, count = 6_000, queryCount = 100
        let all = Self.clustered(count: count + queryCount, dimension: d, spread: 0.5, seed: 8)
        let vectors = Array(all[0..<(count * d)])
        let parameters = HNSWParameters(m: 12, efConstruction: 80, mipsReduction: false)
        let serial = try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: d, metric: .innerProduct, parameters: parameters) }
        let parallel = try vectors.withUnsafeBufferPointer {
            try HNSWIndex.build($0, dimension: d, metric: .innerProduct, parameters: parameters, threads: 4)
        }
        func recall(_ index: HNSWIndex) -> Double {
            var hits = 0
            for q in 0..<queryCount {
                let query = Array(all[((count + q) * d)..<((count + q + 1) * d)])
                hits += Set(Self.naive(vectors, query, dimension: d, k: 10)).intersection(index.search(query, k: 10, ef: 48).map(\.id)).count
            }
            return Double(hits) / Double(queryCount * 10)
        }
        let serialRecall = recall(serial), parallelRecall = recall(parallel)
        #expect(parallelRecall >= 0.95, "recall@10 at ef=48 is \(parallelRecall) built on 4 threads")
        #expect(parallelRecall >= serialRecall - 0.02, "4 threads \(parallelRecall) vs 1 thread \(serialRecall)")
        // Every link and level passes the same validation a file from disk gets.
        try await withScratchFolder { folder in
            let file = folder.appendingPathComponent("parallel.hnsw")
            try parallel.write(to: file)
            #expect(try HNSWIndex(contentsOf: file.path).count == count)
        }
        #expect(throws: DuetError.self) { try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: d, metric: .cosine, threads: 0) } }
    }

    /// Inner product over rows of unequal length goes through the MIPS reduction; queries are
    /// compared on the caller's dimensions only, and must still find the largest inner products.
    @Test func innerProductWithTheMIPSReductionFindsTheLargestProducts() throws {
        let d = 16, count = 5_000
        let vectors = Self.clustered(count: count, dimension: d, spread: 0.4, seed: 13).enumerated().map {
            $0.element * Float(1 + ($0.offset / d) % 8)
        }
        let index = try vectors.withUnsafeBufferPointer {
            try HNSWIndex.build($0, dimension: d, metric: .innerProduct, parameters: HNSWParameters(m: 12, efConstruction: 80, mipsReduction: true))
        }
        var rng = SplitMix64(seed: 14)
        var hits = 0
        for _ in 0..<50 {
            let query = (0..<d).map { _ in Float(rng.gaussian()) }
            let found = index.search(query, k: 10, ef: 64)
            hits += Set(Self.naive(vectors, query, dimension: d, k: 10)).intersection(found.map(\.id)).count
            // Scores are the raw inner products.
            for neighbour in found.prefix(3) {
                let product = (0..<d).reduce(Float(0)) { $0 + vectors[neighbour.id * d + $1] * query[$1] }
                #expect(abs(neighbour.score - product) <= 1e-3 * max(1, abs(product)))
            }
        }
        #expect(Double(hits) / 500 >= 0.9, "recall@10 \(Double(hits) / 500)")
    }

    /// Rows like a factor model's: clustered directions (tastes), heavy-tailed (log-normal) lengths.
    static func heavyTailed(count: Int, dimension: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        var rows = clustered(count: count, dimension: dimension, clusters: 20, spread: 0.05, seed: seed + 1)
        for row in 0..<count {
            let length = Float(exp(1.5 * rng.gaussian()))
            for j in 0..<dimension { rows[row * dimension + j] *= length }
        }
        return rows
    }

    /// Every int8 screening this CPU can run (portable C always).
    static var screenings: [(String, duet_i8_screen_fn)] {
        [String](["portable", "avx2", "vnni"]).compactMap { name in duet_i8_screen_variant(name).map { (name, $0) } }
    }

    /// The length-ordered scan must give exactly the full scan's answer (ids, scores, exclusions),
    /// including for rows past its sorted copy, while reading a fraction of the rows and scoring
    /// few of them exactly.
    @Test func normOrderedScanEqualsAFullScanWhileReadingFewRows() {
        let d = 32, count = 20_003, k = 20
        let vectors = Self.heavyTailed(count: count, dimension: d, seed: 21)
        let full = ExactIndex(copying: vectors, dimension: d, metric: .innerProduct, halfPrecision: false)
        let scans = vectors.withUnsafeBufferPointer { buffer in
            [NormOrderedScan(vectors: buffer, dimension: d, owner: nil), NormOrderedScan(vectors: buffer, dimension: d, owner: nil, copiedRows: 64)]
                + Self.screenings.map { NormOrderedScan(vectors: buffer, dimension: d, owner: nil, screening: $0.1) }
        }
        let counted = vectors.withUnsafeBufferPointer { NormOrderedScan(vectors: $0, dimension: d, owner: nil, screening: countingScreening) }
        ScreeningCounts.reset()
        var rng = SplitMix64(seed: 22)
        var provenWithinATenth = 0
        for q in 0..<60 {
            // Users who share a cluster's taste, at very different lengths (the bound scales with ‖q‖).
            let scale = Float(exp(2 * rng.gaussian()))
            let like = rng.below(count)
            let query = (0..<d).map { Float(vectors[like * d + $0] + 0.1 * Float(rng.gaussian())) * scale }
            var excluded = ExclusionSet(capacity: count)
            let unfiltered = full.search(query, k: 5)
            if q % 2 == 0 { for neighbour in unfiltered.prefix(3) { excluded.insert(neighbour.id) } }
            for _ in 0..<20 { excluded.insert(rng.below(count)) }
            let expected = full.search(query, k: k, excluding: excluded)
            for scan in scans { #expect(scan.search(query, k: k, excluding: excluded) == expected) }
            #expect(counted.search(query, k: k, excluding: excluded) == expected)
            // No exclusions (an empty bitmap), and a bitmap shorter than the rows: ids past it are kept.
            if q % 5 == 0 {
                #expect(scans[0].search(query, k: k) == full.search(query, k: k))
                let short = ExclusionSet(capacity: count / 2, excluding: unfiltered.prefix(3).map(\.id))
                #expect(scans[0].search(query, k: k, excluding: short) == full.search(query, k: k, excluding: short))
            }
            if scans[0].search(query, k: k, excluding: excluded, rowLimit: count / 10) != nil { provenWithinATenth += 1 }
        }
        #expect(provenWithinATenth >= 48, "only \(provenWithinATenth) of 60 lists were proven within a tenth of the rows")
        // The int8 bound is tight enough to matter: few of the rows screened are scored exactly (about 13%
        // here; 20 a list just fill the first places).
        let (screened, candidates) = ScreeningCounts.totals
        #expect(screened > 0 && Double(candidates) <= 0.2 * Double(screened), "\(candidates) of \(screened) rows screened were scored exactly")
        // Too small a budget to prove anything: the caller is told, not given a guess.
        #expect(scans[0].search(Array(vectors[0..<d]), k: k, rowLimit: 0) == nil)
        #expect(scans[0].search(Array(vectors[0..<d]), k: 0) == [])
    }

    /// Rows int8 cannot tell apart must still come out in the exact order: near-copies a hair apart
    /// (well below one int8 step), exact duplicates (ties go to the lower id), rows dominated by one
    /// large value, zero rows, a dimension that is not a multiple of four, queries int8 holds exactly,
    /// and a zero query.
    @Test func normOrderedScanIsExactWhereInt8CannotTellRowsApart() {
        let d = 13, k = 10
        var rng = SplitMix64(seed: 41)
        var vectors: [Float] = []
        for _ in 0..<300 {
            let base = (0..<d).map { _ in Float(rng.gaussian()) * Float(exp(rng.gaussian())) }
            vectors += base
            for copy in 0..<3 { vectors += base.map { $0 * (1 + Float(copy + 1) * 1e-4 * Float(rng.gaussian())) } }
            vectors += base
        }
        for row in 0..<40 {
            var spiky = (0..<d).map { _ in Float(rng.gaussian()) * 1e-3 }
            spiky[row % d] = 50
            vectors += spiky
        }
        vectors += [Float](repeating: 0, count: 3 * d)
        let count = vectors.count / d
        let full = ExactIndex(copying: vectors, dimension: d, metric: .innerProduct, halfPrecision: false)
        let scans = vectors.withUnsafeBufferPointer { buffer in
            Self.screenings.map { NormOrderedScan(vectors: buffer, dimension: d, owner: nil, screening: $0.1) }
        }
        for q in 0..<80 {
            // Queries near a stored row (so its near-copies compete for the last places), or spiky, or zero.
            let like = rng.below(count)
            var query = (0..<d).map { vectors[like * d + $0] + 0.01 * Float(rng.gaussian()) }
            if q % 10 == 9 { query = (0..<d).map { $0 == q % d ? 30 : Float(rng.gaussian()) * 1e-4 } }
            if q == 40 { query = [Float](repeating: 0, count: d) }
            // Whole numbers up to 127 round to int8 exactly: only the rows' own rounding is left to bound.
            if q % 4 == 1 {
                let largest = query.map(abs).max()!
                query = query.map { ($0 / largest * 127).rounded() }
            }
            var excluded = ExclusionSet(capacity: count)
            if q % 3 == 0 { for neighbour in full.search(query, k: 2) { excluded.insert(neighbour.id) } }
            let expected = full.search(query, k: k, excluding: excluded)
            for (scan, (name, _)) in zip(scans, Self.screenings) {
                #expect(scan.search(query, k: k, excluding: excluded) == expected, "\(name) screening, query \(q)")
            }
        }
    }

    /// Catalogues of near-identical rows, where the exact order is decided below int8's resolution:
    /// rows a hair apart against queries int8 holds exactly (only the rows' rounding separates them),
    /// and whole-number rows int8 holds exactly against any query (only the query's rounding does).
    /// A scan that left either rounding out of its bound would skip rows that belong in the list.
    @Test(arguments: ["rows", "query"])
    func normOrderedScanBoundsEachSidesRounding(rounded side: String) {
        let d = 16, count = 48, k = 5
        var rng = SplitMix64(seed: side == "rows" ? 51 : 52)
        for trial in 0..<150 {
            var vectors: [Float] = [], query: [Float]
            let base = (0..<d).map { _ in (Float(rng.gaussian()) * 60).rounded() }
            if side == "rows" {
                for _ in 0..<count { vectors += base.map { $0 + 0.002 * Float(rng.gaussian()) } }
                query = (0..<d).map { _ in (Float(rng.gaussian()) * 60).rounded() }
                query[0] = 127
            } else {
                var whole = base
                whole[0] = 127
                for _ in 0..<count { vectors += whole.enumerated().map { j, value in j == 0 ? value : value + Float(rng.below(3)) - 1 } }
                query = (0..<d).map { _ in Float(rng.gaussian()) }
            }
            let full = ExactIndex(copying: vectors, dimension: d, metric: .innerProduct, halfPrecision: false)
            let expected = full.search(query, k: k)
            let scans = vectors.withUnsafeBufferPointer { buffer in
                Self.screenings.map { ($0.0, NormOrderedScan(vectors: buffer, dimension: d, owner: nil, screening: $0.1)) }
            }
            for (name, scan) in scans { #expect(scan.search(query, k: k) == expected, "\(name) screening, trial \(trial)") }
        }
    }

    @Test func corruptOrTruncatedFilesAreRefused() async throws {
        let d = 8
        let vectors = Self.clustered(count: 1_000, dimension: d, seed: 6)
        let index = try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: d, metric: .innerProduct, parameters: HNSWParameters(m: 8, efConstruction: 40)) }
        try await withScratchFolder { folder in
            let good = folder.appendingPathComponent("good.hnsw")
            try index.write(to: good)
            let bytes = try Data(contentsOf: good)
            func refused(_ data: Data, _ message: String) throws {
                let path = folder.appendingPathComponent("bad-\(UUID().uuidString).hnsw")
                try data.write(to: path)
                #expect { try HNSWIndex(contentsOf: path.path) } throws: { "\($0)".contains(message) }
            }
            try refused(bytes.prefix(bytes.count - 4), "truncated")
            try refused(bytes.prefix(40), "shorter than the header")
            var header = bytes
            header[20] ^= 1
            try refused(header, "header checksum")
            try refused(Data(repeating: 7, count: 500), "bad magic")
            // Upper-level links are checked at open: one past the last node is refused.
            var upper = bytes
            let linksOffset = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 104, as: UInt64.self) })
            #expect(linksOffset + 8 <= bytes.count, "the test index has upper levels")
            upper.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: UInt32(1), toByteOffset: linksOffset, as: UInt32.self)
                raw.storeBytes(of: UInt32(999_999), toByteOffset: linksOffset + 4, as: UInt32.self)
            }
            try refused(upper, "bad link at level")
            // Layer-0 lists are checked as a search reads them (opening does not read every record): a
            // link past the last node and a count past the list are never followed, and searches still answer.
            var layer0 = bytes
            let recordsOffset = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 88, as: UInt64.self) })
            let recordBytes = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 72, as: UInt64.self) })
            layer0.withUnsafeMutableBytes { raw in
                for node in 0..<1_000 {
                    let record = recordsOffset + node * recordBytes
                    if node % 2 == 0 {
                        raw.storeBytes(of: UInt32(999_999), toByteOffset: record + 4, as: UInt32.self)
                    } else {
                        raw.storeBytes(of: UInt32.max, toByteOffset: record, as: UInt32.self)
                    }
                }
            }
            let path = folder.appendingPathComponent("layer0.hnsw")
            try layer0.write(to: path)
            let damaged = try HNSWIndex(contentsOf: path.path)
            for node in stride(from: 0, to: 1_000, by: 37) {
                let found = damaged.search(Array(vectors[node * d..<(node + 1) * d]), k: 10, ef: 40)
                #expect(!found.isEmpty && found.allSatisfy { (0..<1_000).contains($0.id) }, "query \(node)")
            }
        }
    }

    /// The Lab's publish check: a graph mapped whole is compared with its chunk digests, so an artefact
    /// whose digests disagree with its graph (consistent checksums, wrong list) is refused, naming the
    /// chunk, before Serve could withdraw it; the same artefact read by chunks fails the same way.
    @Test func graphChunkDigestsAreCheckedWhenTheGraphIsMappedWhole() async throws {
        let d = 8, count = 3_000
        let vectors = Self.clustered(count: count, dimension: d, seed: 31)
        let graph = try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: d, metric: .cosine, parameters: HNSWParameters(m: 8, efConstruction: 40)) }
        let chunkBytes = 4_096
        try await withScratchFolder { folder in
            func artefact(_ digests: [UInt8]) throws -> URL {
                let id = try ContentAddressedFolder.write(into: folder, fill: { out in
                    try out.file(IndexFiles.graph) { try $0.write(graph.bytes) }
                    try out.file(IndexFiles.graphChunks) { try $0.write(digests) }
                    try out.file(IndexFiles.itemIDs) { writer in for row in 0..<count { try writer.write(Array("i\(row)\n".utf8)) } }
                }, manifest: { files in
                    try IndexManifest(name: "items/x", kind: .hnsw, metric: "cosine", dimension: d, itemCount: count, source: IndexSource(algorithm: "vectors"),
                                      parameters: [:], quality: nil, createdAt: 1, files: files, graphChunkBytes: chunkBytes).canonicalJSON()
                })
                return folder.appendingPathComponent(id)
            }
            var digests = ChunkDigests.compute(graph.bytes, chunkBytes: chunkBytes)
            try SimilarityIndexArtefact(folder: artefact(digests)).checkGraphChunkDigests()
            digests[5 * ChunkDigests.digestBytes] ^= 1
            let wrong = try artefact(digests)
            #expect { try SimilarityIndexArtefact(folder: wrong).checkGraphChunkDigests() } throws: { "\($0)".contains("chunk 5") }
            #expect { try SimilarityIndexArtefact(folder: wrong, loading: .verifiedOnTouch).verifyRemaining() } throws: { "\($0)".contains("chunk 5") }
        }
    }

    /// A graph read in a chunk at a time (Serve's way): the same answers as the index it was written
    /// from, after reading only part of the file; a chunk whose bytes changed on disk is never used;
    /// a file cut short after opening is reported, not a crash; bytes verified once stay as verified.
    @Test func graphsVerifiedOnTouchAnswerBeforeReadingTheWholeFile() async throws {
        let d = 16, count = 30_000
        let vectors = Self.clustered(count: count, dimension: d, seed: 21)
        let index = try vectors.withUnsafeBufferPointer { try HNSWIndex.build($0, dimension: d, metric: .cosine, parameters: HNSWParameters(m: 8, efConstruction: 40)) }
        let chunkBytes = 4_096
        try await withScratchFolder { folder in
            let graphPath = folder.appendingPathComponent("index.hnsw")
            let digestsPath = folder.appendingPathComponent("index.hnsw.chunks")
            try index.write(to: graphPath)
            try Data(ChunkDigests.compute(index.bytes, chunkBytes: chunkBytes)).write(to: digestsPath)
            func open(_ path: URL) throws -> (HNSWIndex, VerifiedPages) {
                let pages = try VerifiedPages(path: path.path, size: index.bytes.count, chunkBytes: chunkBytes,
                                              digests: MappedFile(path: digestsPath.path, privateCopy: true))
                return (try HNSWIndex(pages: pages), pages)
            }
            let (lazy, pages) = try open(graphPath)
            #expect(pages.chunkCount > 900, "the test file spans many chunks (\(pages.chunkCount))")
            let opened = pages.verifiedChunks
            #expect(opened < pages.chunkCount / 10, "opening read \(opened) of \(pages.chunkCount) chunks")
            let query = Array(vectors[17 * d..<18 * d])
            #expect(lazy.search(query, k: 10, ef: 32).map(\.id) == index.search(query, k: 10, ef: 32).map(\.id))
            #expect(pages.verifiedChunks > opened, "the search read records in")
            #expect(pages.verifiedChunks < pages.chunkCount / 2, "one search read \(pages.verifiedChunks) of \(pages.chunkCount) chunks")
            #expect(pages.failure == nil)

            // Edit two records' vectors on disk after the file was opened. A record already read keeps
            // the bytes that were verified; the other one's chunk, read later, fails and is never used.
            let recordsOffset = lazy.recordsOffset, recordBytes = lazy.recordBytes
            func chunks(_ node: Int) -> ClosedRange<Int> {
                (recordsOffset + node * recordBytes) / chunkBytes...(recordsOffset + (node + 1) * recordBytes - 1) / chunkBytes
            }
            let read = try #require(lazy.search(query, k: 1, ef: 32).first?.id)
            let unread = try #require((0..<count).reversed().first { node in
                chunks(node).allSatisfy { !pages.isReady($0 * chunkBytes, 1) } && !chunks(node).overlaps(chunks(read))
            })
            var before = [Float](repeating: 0, count: d)
            #expect(lazy.copyVector(of: read, into: &before))
            let handle = try FileHandle(forUpdating: graphPath)
            for node in [read, unread] {
                try handle.seek(toOffset: UInt64(recordsOffset + node * recordBytes + recordBytes - 4))
                try handle.write(contentsOf: Data([0x7F, 0x7F, 0x7F, 0x7F]))
            }
            try handle.close()
            var after = [Float](repeating: 0, count: d)
            #expect(lazy.copyVector(of: read, into: &after) && after == before, "a verified record changed under the reader")
            #expect(!lazy.copyVector(of: unread, into: &after), "an edited chunk was used")
            let failure = try #require(pages.failure)
            #expect("\(failure)".contains("chunk \(chunks(unread).lowerBound)"), "\(failure)")
            // Searches go on without the bad chunk's records, never reading them.
            for node in stride(from: 0, to: count, by: 97) {
                let found = lazy.search(Array(vectors[node * d..<(node + 1) * d]), k: 10, ef: 32)
                #expect(!found.isEmpty && found.allSatisfy { (0..<count).contains($0.id) && $0.id != unread })
            }
            #expect(!pages.verifyRemaining())

            // An untouched copy verifies whole; one cut short after opening reports where it ends (no SIGBUS).
            let copy = folder.appendingPathComponent("copy.hnsw")
            try Data(index.bytes).write(to: copy)
            let (_, whole) = try open(copy)
            #expect(whole.verifyRemaining() && whole.isComplete && whole.failure == nil)
            let (cut, cutPages) = try open(copy)
            let truncating = try FileHandle(forUpdating: copy)
            try truncating.truncate(atOffset: UInt64(index.bytes.count / 2))
            try truncating.close()
            #expect(!cutPages.verifyRemaining())
            #expect("\(try #require(cutPages.failure))".contains("ends at byte"))
            #expect(cut.search(query, k: 10, ef: 32).allSatisfy { (0..<count).contains($0.id) })
        }
    }
}

@Suite struct E4M3Tests {
    @Test func codesRoundTripAndRoundToNearest() {
        // Every finite code decodes to a value that encodes back to the same code.
        for code in 0...255 where code & 0x7F != 0x7F && code != 0x80 {
            #expect(E4M3.encode(E4M3.decode(UInt8(code))) == UInt8(code), "code \(code)")
        }
        #expect(E4M3.decode(0x7E) == 448 && E4M3.decode(0xFE) == -448)
        #expect(E4M3.decode(0x38) == 1 && E4M3.decode(0x01) == 0x1p-9)
        #expect(E4M3.decode(0x7F).isNaN)
        #expect(E4M3.encode(1_000) == 0x7E, "saturates")
        #expect(E4M3.decode(E4M3.encode(1.05)) == 1, "1.05 is nearer 1 than 1.125")
        #expect(E4M3.decode(E4M3.encode(-0.3)) == -0.3125)
        // Relative error stays within half a mantissa step (1/16) over the normal range.
        for value in stride(from: Float(0.02), through: 400, by: 0.37) {
            #expect(abs(E4M3.decode(E4M3.encode(value)) - value) <= value / 16 + 1e-6, "\(value)")
        }
    }
}

/// Counts what the int8 screening does (the one test that uses it runs its searches in sequence).
enum ScreeningCounts {
    nonisolated(unsafe) static var screenedRows = 0
    nonisolated(unsafe) static var candidateRows = 0
    static func reset() { (screenedRows, candidateRows) = (0, 0) }
    static var totals: (screened: Int, candidates: Int) { (screenedRows, candidateRows) }
}

/// The CPU's screening, counting the rows it read and those whose raised score reached the bar.
let countingScreening: duet_i8_screen_fn = { scan, query, position, rowLimit, heapFull, threshold, upper, outcome in
    let stopped = VectorMath.int8Screening(scan, query, position, rowLimit, heapFull, threshold, upper, outcome)
    let candidates = outcome!.pointee == 0
    ScreeningCounts.screenedRows += (stopped - position) + (candidates ? 16 : 0)
    if candidates { ScreeningCounts.candidateRows += (0..<16).filter { !(upper![$0] < threshold) }.count }
    return stopped
}
