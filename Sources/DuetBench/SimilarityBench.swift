public import ArgumentParser
import DuetCore
import DuetKernels
import DuetSimilarity
import DuetCommandLine
import Foundation

/// Raw little-endian float32 rows, as peers.py writes them.
func readFloat32Rows(_ path: String, dimension: Int) throws -> [Float] {
    guard dimension > 0 else { throw ValidationError("--dim must be positive") }
    let file = try MappedFile(path: path)
    guard file.size % (4 * dimension) == 0, file.size > 0 else {
        throw DuetError.corruptFile(path: path, reason: "\(file.size) bytes is not a whole number of \(dimension)-float rows")
    }
    return Array(file.buffer(of: Float.self, at: 0, count: file.size / 4))
}

/// The inputs every vector benchmark takes, as peers.py passes them.
struct VectorFiles: ParsableArguments {
    @Option(help: "Indexed rows (raw float32).") var vectors: String
    @Option(help: "Query rows (raw float32).") var queries: String
    @Option(help: "Dimension.") var dim: Int
    @Option(help: "Neighbours per query.") var k: Int = 10

    func validate() throws {
        guard dim >= 1 else { throw ValidationError("--dim must be positive") }
        guard k >= 1 else { throw ValidationError("--k must be ≥ 1") }
    }

    func load() throws -> (rows: [Float], queries: [Float]) {
        (try readFloat32Rows(vectors, dimension: dim), try readFloat32Rows(queries, dimension: dim))
    }
}

func writeIDs(_ ids: [[Neighbour]], k: Int, to path: String) throws {
    var flat: [UInt32] = []
    flat.reserveCapacity(ids.count * k)
    for row in ids {
        for slot in 0..<k { flat.append(slot < row.count ? UInt32(row[slot].id) : UInt32.max) }
    }
    try flat.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path), options: .atomic) }
}

struct ANNBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ann",
        abstract: "Build a similarity index (partitioned by default, or HNSW) and time single-threaded queries at several efforts, as peers.py specifies.",
        discussion: "Writes P.ef<ef>.u32 (nq·k ids) per ef and prints {build_seconds, runs: [{ef, qps}]}. For a partitioned index an ef visits ⌈ef/2⌉ cells and re-scores ef + 20 candidates (at least 4·k)."
    )
    @OptionGroup var files: VectorFiles
    @Option(help: "HNSW links per node.") var m: Int = 16
    @Option(help: "Beam width while building.") var efConstruction: Int = 200
    @Option(help: "Beam widths to measure, comma-separated.") var ef: String = "10,20,40,80,160"
    @Option(help: "ip or cosine.") var metric: SimilarityMetric = .innerProduct
    @Option(help: "Threads for building the index (queries always run one at a time).") var threads: Int = 1
    @Option(help: "Prefix of the id files.") var resultsPrefix: String
    @Flag(help: "Apply the MIPS reduction for inner product (off matches hnswlib on unit vectors).") var mips = false
    @Option(help: "Reuse this index file if it exists, else build and save it there (to time queries alone).") var index: String?
    @Option(help: ArgumentHelp("Answer the query set this many times per ef.", visibility: .hidden)) var rounds: Int = 1
    @Option(help: "hnsw (graph) or partitioned (k-means cells over 4-bit quantized residuals, re-ranked exactly).")
    var indexType: IndexType = .partitioned
    @Option(help: "Cells of a partitioned index (default √n).") var partitions: Int?
    @Option(help: "Values per 4-bit code in a partitioned index: 1 or 2.") var subspaceWidth: Int = 1
    @Option(help: "Candidates a partitioned search re-scores exactly (default: by ef, as ScaNN's settings in peers.py).") var rerank: Int?
    @OptionGroup var output: OutputOptions

    enum IndexType: String, ExpressibleByArgument, CaseIterable { case hnsw, partitioned }

    struct Run: Codable { var ef: Int; var qps: Double }
    struct Result: Codable { var build_seconds: Double; var runs: [Run]; var kernels = VectorMath.variant }

    func run() throws {
        let efs = try ef.split(separator: ",").map { text -> Int in
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value > 0 else { throw ValidationError("--ef '\(text)' is not a positive number") }
            return value
        }
        let (data, queryData) = try files.load()
        let dim = files.dim, k = files.k
        guard rounds >= 1 else { throw ValidationError("--rounds must be ≥ 1") }
        let clock = ContinuousClock()
        if indexType == .partitioned { return try runPartitioned(data: data, queryData: queryData, efs: efs) }
        let started = clock.now
        let hnsw: HNSWIndex
        if let path = self.index, FileManager.default.fileExists(atPath: path) {
            hnsw = try HNSWIndex(contentsOf: path)
            guard hnsw.count == data.count / dim, hnsw.dimension == dim else {
                throw ValidationError("--index \(path) holds \(hnsw.count) × \(hnsw.dimension), but --vectors has \(data.count / dim) × \(dim); remove it to rebuild")
            }
        } else {
            hnsw = try data.withUnsafeBufferPointer {
                try HNSWIndex.build($0, dimension: dim, metric: metric,
                                    parameters: HNSWParameters(m: m, efConstruction: efConstruction, mipsReduction: mips), threads: threads)
            }
            if let path = self.index { try hnsw.write(to: URL(fileURLWithPath: path)) }
        }
        let buildSeconds = (clock.now - started).seconds
        let runs = try timeQueries(queryData, efs: efs) { query, beam in hnsw.search(query, k: k, ef: beam) }
        let result = Result(build_seconds: buildSeconds, runs: runs)
        if output.json { return try printJSON(result) }
        print(String(format: "built %d × %d in %.2f s", data.count / dim, dim, buildSeconds))
        for run in runs { print(String(format: "  ef %4d: %8.0f queries/s", run.ef, run.qps)) }
    }
}

extension ANNBench {
    /// Answers every query one at a time, --rounds times per ef, timing each ef's pass and writing
    /// the first round's ids to P.ef<ef>.u32.
    func timeQueries(_ queryData: [Float], efs: [Int], search: (UnsafePointer<Float>, Int) -> [Neighbour]) throws -> [Run] {
        let dim = files.dim, k = files.k, queryCount = queryData.count / dim
        let clock = ContinuousClock()
        var runs: [Run] = []
        for beam in efs {
            var results: [[Neighbour]] = []
            results.reserveCapacity(queryCount)
            let begin = clock.now
            queryData.withUnsafeBufferPointer { buffer in
                for round in 0..<rounds {
                    for query in 0..<queryCount {
                        let found = search(buffer.baseAddress! + query * dim, beam)
                        if round == 0 { results.append(found) }
                    }
                }
            }
            runs.append(Run(ef: beam, qps: Double(queryCount * rounds) / (clock.now - begin).seconds))
            try writeIDs(results, k: k, to: "\(resultsPrefix).ef\(beam).u32")
        }
        return runs
    }

    /// What an --ef value asks of a partitioned index: ⌈ef/2⌉ cells visited, and ef + 20 candidates
    /// (at least 4·k) re-scored exactly (ScaNN's settings in peers.py are 10 leaves/30 … 160/250).
    static func effort(ef: Int, k: Int) -> (cells: Int, rerank: Int) { ((ef + 1) / 2, max(4 * k, ef + 20)) }

    /// A partitioned index, timed at each --ef (see `effort`).
    func runPartitioned(data: [Float], queryData: [Float], efs: [Int]) throws {
        let dim = files.dim, k = files.k
        let clock = ContinuousClock()
        let started = clock.now
        let index: PartitionedIndex
        if let path = self.index, FileManager.default.fileExists(atPath: path) {
            index = try PartitionedIndex(contentsOf: path)
            guard index.count == data.count / dim, index.dimension == dim else {
                throw ValidationError("--index \(path) holds \(index.count) × \(index.dimension), but --vectors has \(data.count / dim) × \(dim); remove it to rebuild")
            }
        } else {
            index = try data.withUnsafeBufferPointer {
                try PartitionedIndex.build($0, dimension: dim, metric: metric, parameters: PartitionParameters(partitions: partitions, subspaceWidth: subspaceWidth),
                                           threads: threads)
            }
            if let path = self.index { try index.write(to: URL(fileURLWithPath: path)) }
        }
        let buildSeconds = (clock.now - started).seconds
        let runs = try timeQueries(queryData, efs: efs) { query, beam in
            index.search(query, k: k, partitions: Self.effort(ef: beam, k: k).cells, rerank: rerank ?? Self.effort(ef: beam, k: k).rerank,
                         filter: ExclusionSet.none)
        }
        let result = Result(build_seconds: buildSeconds, runs: runs)
        if output.json { return try printJSON(result) }
        print(String(format: "built %d × %d (%d cells) in %.2f s", data.count / dim, dim, index.partitionCount, buildSeconds))
        for run in runs {
            let effort = Self.effort(ef: run.ef, k: k)
            print(String(format: "  ef %4d (%d cells, %d re-scored): %8.0f queries/s", run.ef, effort.cells, rerank ?? effort.rerank, run.qps))
        }
    }
}

struct IndexLoadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index-load",
        abstract: "Open a saved HNSW index (memory map + validation) and time it to its first answer, with resident memory."
    )
    @Option(help: "An index file, e.g. from `duet bench ann --index`.") var index: String
    @Option(help: "Beam width of the first query.") var ef: Int = 64
    @OptionGroup var output: OutputOptions

    struct Result: Codable {
        var open_seconds: Double
        var first_query_seconds: Double
        var items: Int
        var dimension: Int
        var file_megabytes: Double
        var resident_megabytes_before: Double
        var resident_megabytes_after: Double
    }

    func run() throws {
        let before = residentMegabytes()
        let clock = ContinuousClock()
        let started = clock.now
        let hnsw = try HNSWIndex(contentsOf: index)
        let opened = clock.now
        // A query that is one of the indexed rows, so the answer is checkable.
        let query = [Float](unsafeUninitializedCapacity: hnsw.dimension) { buffer, count in
            hnsw.copyVector(of: hnsw.count / 2, into: buffer.baseAddress!)
            count = hnsw.dimension
        }
        let found = hnsw.search(query, k: 10, ef: ef)
        let answered = clock.now
        guard !found.isEmpty else { throw DuetError.invalidValue(field: "index", reason: "the first query found nothing") }
        let result = Result(open_seconds: (opened - started).seconds, first_query_seconds: (answered - started).seconds,
                            items: hnsw.count, dimension: hnsw.dimension, file_megabytes: Double(hnsw.bytes.count) / 1_048_576,
                            resident_megabytes_before: before, resident_megabytes_after: residentMegabytes())
        if output.json { return try printJSON(result) }
        print(String(format: "%d × %d index (%.0f MB): opened and validated in %.3f s, first answer after %.3f s; resident %.0f MB → %.0f MB",
                     result.items, result.dimension, result.file_megabytes, result.open_seconds, result.first_query_seconds,
                     result.resident_megabytes_before, result.resident_megabytes_after))
    }
}

/// VmRSS from /proc (Linux), in MB; 0 where there is no /proc.
func residentMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kilobytes / 1_024
}

struct E4M3Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e4m3",
        abstract: "What 8-bit (E4M3) vectors do to an exact inner-product scan: recall@k against float32, speed, memory."
    )
    @OptionGroup var files: VectorFiles
    @OptionGroup var output: OutputOptions

    struct Result: Codable {
        var recall: Double
        var float_qps: Double
        var e4m3_qps: Double
        var float_megabytes: Double
        var e4m3_megabytes: Double
    }

    func run() throws {
        let (data, queryData) = try files.load()
        let dim = files.dim, k = files.k
        let rows = data.count / dim, queryCount = queryData.count / dim
        let codes = data.map(E4M3.encode)
        var scores = [Float](repeating: 0, count: rows)
        let clock = ContinuousClock()
        // Both scans score every row per query into the same buffer, then select the top k.
        func scan(_ scoreAll: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> ([[Int32]], Double) {
            var results: [[Int32]] = []
            let begin = clock.now
            queryData.withUnsafeBufferPointer { queries in
                scores.withUnsafeMutableBufferPointer { scoreBuffer in
                    for q in 0..<queryCount {
                        scoreAll(queries.baseAddress! + q * dim, scoreBuffer.baseAddress!)
                        results.append(TopK.select(UnsafeBufferPointer(scoreBuffer), k: k).map(\.id))
                    }
                }
            }
            return (results, Double(queryCount) / (clock.now - begin).seconds)
        }
        let (truth, floatQPS) = data.withUnsafeBufferPointer { rowsBuffer in
            scan { query, out in VectorMath.scoreRows(rowsBuffer.baseAddress!, rowCount: rows, dimension: dim, query: query, into: out) }
        }
        let (quantized, e4m3QPS) = codes.withUnsafeBufferPointer { codeBuffer in
            scan { query, out in
                for row in 0..<rows { out[row] = E4M3.dot(codeBuffer.baseAddress! + row * dim, query, dim) }
            }
        }
        var hits = 0
        for (exact, approximate) in zip(truth, quantized) { hits += Set(exact).intersection(approximate).count }
        let result = Result(recall: Double(hits) / Double(queryCount * k), float_qps: floatQPS, e4m3_qps: e4m3QPS,
                            float_megabytes: Double(data.count * 4) / 1_048_576, e4m3_megabytes: Double(codes.count) / 1_048_576)
        if output.json { return try printJSON(result) }
        print(String(format: "%d × %d: E4M3 recall@%d %.4f against float32; scan %.0f q/s float32, %.0f q/s E4M3; vectors %.1f MB → %.1f MB",
                     rows, dim, k, result.recall, floatQPS, e4m3QPS, result.float_megabytes, result.e4m3_megabytes))
    }
}

struct ExactBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exact",
        abstract: "Exact top-k by brute force, single queries, as peers.py specifies. Writes P.exact.u32, prints {qps}."
    )
    @OptionGroup var files: VectorFiles
    @Option(help: "ip or cosine.") var metric: SimilarityMetric = .innerProduct
    @Option(help: "Threads (queries run one at a time).") var threads: Int = 1
    @Option(help: "Prefix of the id file.") var resultsPrefix: String
    @OptionGroup var output: OutputOptions

    struct Result: Codable { var qps: Double; var kernels = VectorMath.variant }

    func run() throws {
        let (data, queryData) = try files.load()
        let dim = files.dim, k = files.k
        let index = ExactIndex(copying: data, dimension: dim, metric: metric)
        let queryCount = queryData.count / dim
        var results: [[Neighbour]] = []
        let clock = ContinuousClock()
        let begin = clock.now
        queryData.withUnsafeBufferPointer { buffer in
            for query in 0..<queryCount { results.append(index.search(buffer.baseAddress! + query * dim, k: k)) }
        }
        let qps = Double(queryCount) / (clock.now - begin).seconds
        try writeIDs(results, k: k, to: "\(resultsPrefix).exact.u32")
        if output.json { return try printJSON(Result(qps: qps)) }
        print(String(format: "%.0f queries/s", qps))
    }
}

extension SimilarityMetric: ExpressibleByArgument {}
