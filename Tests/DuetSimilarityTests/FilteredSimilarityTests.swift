import DuetCore
import DuetKernels
@testable import DuetSimilarity
import DuetTestSupport
import Foundation
import Testing

/// Filters applied inside the search: recall against an exact scan of the allowed items, at the
/// selectivities where post-filtering falls apart; neighbour lists; catalogue predicates.
@Suite struct FilteredSimilarityTests {
    static let count = 20_000, dimension = 32

    /// For each query, the exact top 10 among the rows `filter` admits, the query itself aside.
    static func truths(_ vectors: [Float], queries: [Int], filter: ItemFilter) -> [Set<Int>] {
        let rejected = (0..<count).map { filter.rejects($0) }
        return queries.map { query in
            let q = Array(vectors[(query * dimension)..<((query + 1) * dimension)])
            return Set(SimilarityTests.naive(vectors, q, dimension: dimension, k: 10) { $0 == query || rejected[$0] })
        }
    }

    /// Recall@10 of `answer` against those.
    static func recall(_ truths: [Set<Int>], queries: [Int], answer: (Int) -> [Neighbour]) -> Double {
        var found = 0, expected = 0
        for (query, truth) in zip(queries, truths) {
            found += answer(query).filter { truth.contains($0.id) }.count
            expected += truth.count
        }
        return Double(found) / Double(max(expected, 1))
    }

    @Test func filteredSearchKeepsRecallAtTenAndOnePercentWherePostFilteringFails() throws {
        let vectors = SimilarityTests.clustered(count: Self.count, dimension: Self.dimension, seed: 11)
        let graph = try vectors.withUnsafeBufferPointer {
            try HNSWIndex.build($0, dimension: Self.dimension, metric: .cosine, parameters: HNSWParameters(m: 16, efConstruction: 100), threads: 2)
        }
        // Beam 32 (a filtered walk of 10), so 10% of 20,000 items still walks the graph rather than scanning.
        let similarity = GraphItemSimilarity(graph: graph, ef: 32)
        var rng = SplitMix64(seed: 5)
        let queries = (0..<100).map { _ in rng.below(Self.count) }
        for (selectivity, expectScan) in [(0.10, false), (0.01, true)] {
            let allowed = (0..<Self.count).filter { _ in Double(rng.below(10_000)) < selectivity * 10_000 }.map { Int32($0) }
            let filter = ItemFilter(excluded: ExclusionSet(capacity: Self.count), allowed: allowed, capacity: Self.count)
            #expect(GraphItemSimilarity.prefersScan(allowed: allowed.count, count: Self.count, beam: similarity.filteredBeam(k: 10)) == expectScan,
                    "\(allowed.count) allowed items: \(expectScan ? "scan them" : "walk the graph")")
            let truths = Self.truths(vectors, queries: queries, filter: filter)
            let inside = Self.recall(truths, queries: queries) { similarity.neighbours(of: $0, k: 10, filter: filter) }
            // Post-filtering at the same beam: search unfiltered, then drop what the filter rejects.
            let after = Self.recall(truths, queries: queries) { query in
                var out: [Neighbour] = []
                vectors.withUnsafeBufferPointer { graph.search($0.baseAddress! + query * Self.dimension, k: 64, ef: 64).forEach { out.append($0) } }
                return Array(out.filter { !filter.rejects($0.id) && $0.id != query }.prefix(10))
            }
            #expect(inside >= 0.95, "recall@10 at \(selectivity * 100)% selectivity: \(inside)")
            #expect(inside > after + 0.2, "inside the search \(inside) vs post-filtered \(after) at \(selectivity * 100)%")
            // Never an item the filter rejects, never the query itself.
            for query in queries.prefix(20) {
                #expect(similarity.neighbours(of: query, k: 10, filter: filter).allSatisfy { !filter.rejects($0.id) && $0.id != query })
            }
        }
        // Without a predicate the graph answers; the exclusions still hold.
        var excluded = ExclusionSet(capacity: Self.count)
        let plain = similarity.neighbours(of: queries[0], k: 10, filter: ItemFilter(excluded: excluded))
        excluded.insert(plain[0].id)
        #expect(!similarity.neighbours(of: queries[0], k: 10, filter: ItemFilter(excluded: excluded)).contains { $0.id == plain[0].id })
    }

    @Test func neighbourListsRoundTripFilterAndRefuseCorruption() async throws {
        try await withScratchFolder { folder in
            // Item 0: [1 (0.9), 2 (0.5), 3 (0.1)]; item 1: [0 (0.9)]; items 2, 3: none.
            let starts = [0, 3, 4, 4, 4]
            let neighbours: [UInt32] = [1, 2, 3, 0], similarities: [Float] = [0.9, 0.5, 0.1, 0.9]
            let writer = try AtomicFileWriter(folder: folder)
            try NeighbourLists.write(starts: starts, neighbours: neighbours, similarities: similarities, to: writer)
            let path = folder.appendingPathComponent("lists.bin")
            try writer.commit(to: path)
            let lists = try NeighbourLists(mapped: MappedFile(path: path.path), itemCount: 4)
            #expect(lists.neighbours(of: 0, k: 2, filter: ItemFilter(excluded: ExclusionSet(capacity: 4))).map(\.id) == [1, 2])
            #expect(lists.neighbours(of: 0, k: 5, filter: ItemFilter(excluded: ExclusionSet(capacity: 4, excluding: [1]))).map(\.id) == [2, 3])
            #expect(lists.neighbours(of: 0, k: 5, filter: ItemFilter(excluded: ExclusionSet(capacity: 4), allowed: [3], capacity: 4)).map(\.id) == [3])
            #expect(lists.similarity(1, 0) == 0.9 && lists.similarity(2, 0) == 0.5 && lists.similarity(2, 3) == 0)
            var bytes = try Data(contentsOf: path)
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(77), toByteOffset: 5 * 8, as: UInt32.self) }
            let bad = folder.appendingPathComponent("bad.bin")
            try bytes.write(to: bad)
            #expect { try NeighbourLists(mapped: MappedFile(path: bad.path), itemCount: 4) } throws: { "\($0)".contains("out of range") }
            try bytes.prefix(bytes.count - 4).write(to: bad)
            #expect { try NeighbourLists(mapped: MappedFile(path: bad.path), itemCount: 4) } throws: { "\($0)".contains("size does not match") }
        }
    }

    @Test func predicatesParseAndSelectFromTheCatalogue() throws {
        #expect(try ItemPredicate.parse("genre=jazz") == ItemPredicate(key: "genre", value: "jazz"))
        #expect(try ItemPredicate.parse("explicit!=true") == ItemPredicate(key: "explicit", value: "true", negated: true))
        #expect(try ItemPredicate.parse("artist=A=B").value == "A=B")
        #expect(try ItemPredicate.parse("a=b!=c") == ItemPredicate(key: "a", value: "b!=c"))
        #expect(try ItemPredicate.parse("Genre!=Jazz") == ItemPredicate(key: "genre", value: "Jazz", negated: true))
        let bads = ["genre", "=jazz", "genre=", "genre!=", "gen re=jazz", "genre!jazz", "genre=x\u{7}", "é=1",
                    String(repeating: "x", count: 65) + "=1", "a=" + String(repeating: "v", count: 201)]
        for bad in bads {
            #expect(throws: DuetError.self, "\(bad)") { try ItemPredicate.parse(bad) }
        }
        // /openapi.json states the same form: the pattern accepts exactly what the parser accepts.
        let pattern = try NSRegularExpression(pattern: ItemPredicate.pattern.replacingOccurrences(of: "\\\\", with: "\\"))
        for text in bads + ["a=b!=c", "Genre!=Jazz", "artist=A=B", "x=" + String(repeating: "v", count: 200)] {
            let matches = pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            #expect(matches == ((try? ItemPredicate.parse(text)) != nil), "pattern and parser agree on '\(text.prefix(20))'")
        }
        #expect(throws: DuetError.self) { try ItemPredicate.parse(all: Array(repeating: "a=b", count: 9)) }
        let ids = ["t0", "t1", "t2", "t3"]
        let catalog = [
            "t0": CatalogItem(id: "t0", title: "A", artist: "X", tags: ["jazz"], attributes: ["explicit": "false"]),
            "t1": CatalogItem(id: "t1", title: "B", artist: "Y", tags: ["jazz"], attributes: ["explicit": "true"]),
            "t2": CatalogItem(id: "t2", title: "C", artist: "X", tags: ["rock"], attributes: ["explicit": "false"]),
        ]
        let attributes = CatalogAttributes(itemIDs: ids, catalog: catalog)
        func admitted(_ texts: [String]) throws -> [Int] {
            let filter = attributes.filter(try ItemPredicate.parse(all: texts), base: ExclusionSet(capacity: 4))
            return (0..<4).filter { !filter.rejects($0) }
        }
        #expect(try admitted(["genre=jazz"]) == [0, 1])
        #expect(try admitted(["genre=jazz", "explicit=false"]) == [0])
        #expect(try admitted(["explicit!=true"]) == [0, 2, 3], "a negation removes only what matches it")
        #expect(try admitted(["artist=X"]) == [0, 2])
        #expect(try admitted(["genre=polka"]).isEmpty)
    }
}
