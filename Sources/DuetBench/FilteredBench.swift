import ArgumentParser
import DuetCore
import DuetSimilarity
import DuetCommandLine
import Foundation

/// `duet bench filtered`: similar items under a predicate that admits 10% or 1% of the catalogue,
/// answered inside the HNSW traversal (or by an exact scan of the admitted items, when few) against
/// post-filtering an unfiltered search, at equal time. Recall is against an exact scan with the filter.
struct FilteredBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filtered",
        abstract: "Filtered similar-item search: inside the traversal vs post-filtering, at 10% and 1% selectivity, recall@10 at equal time.",
        discussion: """
            Rows come from --vectors (raw float32) or are drawn as a Gaussian mixture. The predicate is a random \
            subset of items (independent of the vectors, so the allowed neighbours are scattered across the graph). \
            Post-filtering searches without the filter with k = ef and drops what the filter rejects; its beam is \
            swept and the run at the largest beam no slower than the filtered search is the equal-time figure. \
            With --require-recall, exits non-zero when the filtered search misses that recall or loses to post-filtering.
            """
    )
    @Option(help: "Indexed rows (raw float32); default: a generated mixture.") var vectors: String?
    @Option(help: "Dimension.") var dim: Int = 64
    @Option(help: "Rows to generate when --vectors is not given.") var count: Int = 100_000
    @Option(help: "Clusters of the generated mixture.") var clusters: Int = 1_000
    @Option(help: "Queries per selectivity (items of the index).") var queries: Int = 500
    @Option(help: "Selectivities, comma-separated shares of the catalogue.") var selectivity: String = "0.1,0.01"
    @Option(help: "HNSW links per node.") var m: Int = 16
    @Option(help: "HNSW build beam.") var efConstruction: Int = 100
    @Option(help: "Beam of an unfiltered search; a filtered walk uses a quarter of it (GraphItemSimilarity).") var ef: Int = 64
    @Option(help: "Build threads (queries run on one).") var threads: Int = 2
    @Option(help: "Fail unless the filtered search reaches this recall@10 and beats post-filtering at equal time.") var requireRecall: Double?
    @OptionGroup var output: OutputOptions

    struct Method: Codable {
        var method: String
        var recall: Double
        var microsecondsPerQuery: Double
    }
    struct Level: Codable {
        var selectivity: Double
        var allowed: Int
        /// What `GraphItemSimilarity` chose for this selectivity: "graph" or "scan".
        var chosen: String
        var filtered: Method
        /// The traversal alone (no scan fallback) at a sweep of beams.
        var graphOnly: [Method]
        var exactScan: Method
        var postFilter: [Method]
        /// Post-filtering at the largest beam no slower than the filtered search (its fastest run when none is).
        var postFilterAtEqualTime: Method?
    }
    struct Result: Codable {
        var items: Int
        var dimension: Int
        var build_seconds: Double
        var levels: [Level]
    }

    func run() throws {
        guard dim >= 1, count >= 100, queries >= 1, clusters >= 1, (1...64).contains(threads) else {
            throw ValidationError("--dim, --count (≥ 100), --queries, --clusters and --threads (1…64) must be positive")
        }
        let shares = try selectivity.split(separator: ",").map { text -> Double in
            guard let share = Double(text), share > 0, share <= 1 else { throw ValidationError("--selectivity: '\(text)' is not a share in (0, 1]") }
            return share
        }
        let rows = try vectors.map { try readFloat32Rows($0, dimension: dim) } ?? Self.mixture(count: count, dimension: dim, clusters: clusters)
        let items = rows.count / dim
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows.count)
        _ = storage.initialize(from: rows)
        let clock = ContinuousClock()
        let started = clock.now
        let graph = try HNSWIndex.build(UnsafeBufferPointer(storage), dimension: dim, metric: .cosine,
                                        parameters: HNSWParameters(m: m, efConstruction: efConstruction), threads: threads)
        let buildSeconds = (clock.now - started).seconds
        let exact = ExactIndex(vectors: UnsafeBufferPointer(storage), dimension: dim, metric: .cosine, owner: nil)
        let similarity = GraphItemSimilarity(graph: graph, ef: ef)
        var rng = SplitMix64(seed: 7)
        let queryItems = (0..<queries).map { _ in rng.below(items) }
        var levels: [Level] = []
        for share in shares {
            let allowed = (0..<items).filter { _ in Double(rng.below(1_000_000)) < share * 1_000_000 }.map { Int32($0) }
            guard allowed.count > 10 else { throw ValidationError("selectivity \(share) leaves \(allowed.count) items; use more rows") }
            let filter = ItemFilter(excluded: ExclusionSet(capacity: items), allowed: allowed, capacity: items)
            let truth = queryItems.map { query -> Set<Int> in
                var withoutQuery = filter
                withoutQuery.exclude(query)
                return Set(exact.search(storage.baseAddress! + query * dim, k: 10, filter: withoutQuery).map(\.id))
            }
            func measure(_ name: String, _ answer: (Int) -> [Neighbour]) -> Method {
                let begin = clock.now
                let answers = queryItems.map(answer)
                let micros = (clock.now - begin).seconds * 1e6 / Double(queryItems.count)
                var found = 0, expected = 0
                for (answer, truth) in zip(answers, truth) {
                    found += answer.prefix(10).filter { truth.contains($0.id) }.count
                    expected += truth.count
                }
                return Method(method: name, recall: Double(found) / Double(max(expected, 1)), microsecondsPerQuery: micros)
            }
            let filtered = measure("filtered") { similarity.neighbours(of: $0, k: 10, filter: filter) }
            let graphOnly = [10, 16, 24, 32, 64, 128].map { beam in
                measure("inside-traversal ef \(beam)") { query in
                    var withoutQuery = filter
                    withoutQuery.exclude(query)
                    return graph.search(storage.baseAddress! + query * dim, k: 10, ef: beam, filter: withoutQuery)
                }
            }
            let scan = measure("exact-scan-of-allowed") { query in
                var withoutQuery = filter
                withoutQuery.exclude(query)
                return graph.scan(storage.baseAddress! + query * dim, rows: allowed, k: 10, filter: withoutQuery)
            }
            var post: [Method] = []
            for beam in [16, 32, 64, 128, 256, 512, 1024, 2048, 4096] where beam <= items {
                post.append(measure("post-filter ef \(beam)") { query in
                    graph.search(storage.baseAddress! + query * dim, k: beam, ef: beam).filter { $0.id != query && !filter.rejects($0.id) }
                })
                if post.last!.microsecondsPerQuery > 4 * filtered.microsecondsPerQuery, post.last!.recall >= filtered.recall { break }
            }
            // When even its fastest run is slower, that run stands in (flattering post-filtering).
            let equal = post.last { $0.microsecondsPerQuery <= filtered.microsecondsPerQuery } ?? post.first
            levels.append(Level(selectivity: share, allowed: allowed.count,
                                chosen: GraphItemSimilarity.prefersScan(allowed: allowed.count, count: items, beam: similarity.filteredBeam(k: 10)) ? "scan" : "graph",
                                filtered: filtered, graphOnly: graphOnly, exactScan: scan, postFilter: post, postFilterAtEqualTime: equal))
        }
        let result = Result(items: items, dimension: dim, build_seconds: buildSeconds, levels: levels)
        if output.json {
            try printJSON(result)
        } else {
            print(String(format: "%d × %d rows, HNSW m %d built in %.1f s on %d threads; recall@10 against an exact filtered scan, one thread",
                         items, dim, m, buildSeconds, threads))
            for level in levels {
                print(String(format: "selectivity %g%% (%d items allowed; the filtered search %@):", level.selectivity * 100, level.allowed,
                             level.chosen == "scan" ? "scans them exactly" : "walks the graph"))
                for method in [level.filtered] + level.graphOnly + [level.exactScan] + level.postFilter {
                    print(String(format: "  %-26@ recall@10 %.3f  %8.1f µs/query", method.method as NSString, method.recall, method.microsecondsPerQuery))
                }
                if let equal = level.postFilterAtEqualTime {
                    let slower = equal.microsecondsPerQuery > level.filtered.microsecondsPerQuery ? ", its fastest run and already slower" : ""
                    print(String(format: "  at equal time: filtered %.3f vs post-filtered %.3f (%@%@)", level.filtered.recall, equal.recall, equal.method, slower))
                }
            }
        }
        guard let requireRecall else { return }
        for level in levels {
            let post = level.postFilterAtEqualTime?.recall ?? 0
            guard level.filtered.recall >= requireRecall, level.filtered.recall > post else {
                throw DuetError.refused(String(format: "at %g%% selectivity the filtered search gave recall@10 %.3f (needs ≥ %.2f and above post-filtering's %.3f at equal time)",
                                               level.selectivity * 100, level.filtered.recall, requireRecall, post))
            }
        }
    }

    /// Rows drawn as `peers.py ann` draws them: a standard normal centre each, plus noise of 0.5.
    static func mixture(count: Int, dimension: Int, clusters: Int) -> [Float] {
        var rng = SplitMix64(seed: 42)
        let centres = (0..<(clusters * dimension)).map { _ in Float(rng.gaussian()) }
        var rows = [Float](repeating: 0, count: count * dimension)
        for row in 0..<count {
            let centre = rng.below(clusters)
            for j in 0..<dimension { rows[row * dimension + j] = centres[centre * dimension + j] + 0.5 * Float(rng.gaussian()) }
        }
        return rows
    }
}
