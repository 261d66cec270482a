import DuetCore
import DuetKernels
@testable import DuetSimilarity
import DuetTestSupport
import Foundation
import Testing

@Suite struct PartitionedIndexTests {
    static func recall(_ index: PartitionedIndex, _ queries: [Float], truth: [Set<Int>], dimension d: Int, partitions: Int? = nil,
                       rerank: Int? = nil) -> Double {
        var hits = 0
        for q in 0..<queries.count / d {
            let query = Array(queries[(q * d)..<((q + 1) * d)])
            hits += index.search(query, k: 10, partitions: partitions, rerank: rerank).filter { truth[q].contains($0.id) }.count
        }
        return Double(hits) / Double(10 * truth.count)
    }

    /// Recall against a naive scan for both code widths and both metrics, an odd dimension padded
    /// to a whole code byte, and the effort knobs doing what they say (default cells and shortlist
    /// for one value per code; a 150-row shortlist for pairs).
    @Test(arguments: [(32, SimilarityMetric.innerProduct, 1), (30, .cosine, 1), (32, .innerProduct, 2), (21, .innerProduct, 2)])
    func findsTheTrueNeighboursAtTheDefaultEffort(dimension d: Int, metric: SimilarityMetric, width: Int) throws {
        let all = SimilarityTests.clustered(count: 12_050, dimension: d, clusters: 60, seed: UInt64(d * 10 + width))
        let vectors = Array(all[0..<(12_000 * d)]), queries = Array(all[(12_000 * d)...])
        let index = try vectors.withUnsafeBufferPointer {
            try PartitionedIndex.build($0, dimension: d, metric: metric, parameters: PartitionParameters(subspaceWidth: width))
        }
        #expect(index.partitionCount == 110 && index.partitionSizes().reduce(0, +) == 12_000)
        // Pairs of values per code are coarser: they need a longer shortlist for the same recall.
        let shortlist: Int? = width == 1 ? nil : 150
        let truth = (0..<queries.count / d).map { Set(SimilarityTests.naive(vectors, Array(queries[($0 * d)..<(($0 + 1) * d)]), dimension: d, k: 10)) }
        let atDefault = Self.recall(index, queries, truth: truth, dimension: d, rerank: shortlist)
        #expect(atDefault >= 0.95, "recall@10 \(atDefault) at the default effort")
        // Every cell and a long shortlist: the exact answer.
        #expect(Self.recall(index, queries, truth: truth, dimension: d, partitions: index.partitionCount, rerank: 400) >= 0.999)
        // One cell and a shortlist of k: the approximation shows (the knobs are not ignored).
        #expect(Self.recall(index, queries, truth: truth, dimension: d, partitions: 1, rerank: 10) < atDefault)
        // Scores are the exact inner products (cosines for cosine) of the returned rows.
        let query = Array(queries[0..<d])
        let norm = metric == .cosine ? query.reduce(0) { $0 + $1 * $1 }.squareRoot() : 1
        for found in index.search(query, k: 5) {
            let exact = (0..<d).reduce(Float(0)) { $0 + vectors[found.id * d + $1] * query[$1] } / norm
            #expect(abs(found.score - exact) < 1e-4)
        }
    }

    @Test func exclusionsHoldAndBadQueriesFindNothing() throws {
        let d = 16
        let vectors = SimilarityTests.clustered(count: 3_000, dimension: d, clusters: 20, seed: 3)
        let index = try vectors.withUnsafeBufferPointer { try PartitionedIndex.build($0, dimension: d, metric: .innerProduct) }
        let query = Array(vectors[(7 * d)..<(8 * d)])
        let first = index.search(query, k: 10)
        #expect(first.first?.id == 7)
        let excluded = Set(first.prefix(5).map(\.id))
        let second = index.search(query, k: 10, excluding: ExclusionSet(capacity: 3_000, excluding: excluded))
        #expect(second.count == 10 && second.allSatisfy { !excluded.contains($0.id) })
        #expect(Array(second.prefix(5).map(\.id)) == Array(first.suffix(5).map(\.id)))
        var poisoned = query
        poisoned[3] = .nan
        #expect(index.search(poisoned, k: 10).isEmpty)
        #expect(index.search(query, k: 0).isEmpty)
        #expect(throws: DuetError.self) { try [Float](repeating: 1, count: 31).withUnsafeBufferPointer { try PartitionedIndex.build($0, dimension: 8, metric: .innerProduct) } }
        #expect(throws: DuetError.self) { try [Float.infinity, 1].withUnsafeBufferPointer { try PartitionedIndex.build($0, dimension: 2, metric: .innerProduct) } }
        #expect(throws: DuetError.self) { try PartitionParameters(subspaceWidth: 3).validate() }
    }

    /// The same bytes from the same seed, whatever the threads; saved and mapped, the same answers.
    @Test func buildsAreDeterministicAndSavedIndexesAnswerTheSame() async throws {
        let d = 24
        let vectors = SimilarityTests.clustered(count: 5_000, dimension: d, clusters: 30, seed: 9)
        let one = try vectors.withUnsafeBufferPointer { try PartitionedIndex.build($0, dimension: d, metric: .cosine, threads: 1) }
        let two = try vectors.withUnsafeBufferPointer { try PartitionedIndex.build($0, dimension: d, metric: .cosine, threads: 2) }
        #expect(one.bytes.elementsEqual(two.bytes))
        let reseeded = try vectors.withUnsafeBufferPointer {
            try PartitionedIndex.build($0, dimension: d, metric: .cosine, parameters: PartitionParameters(seed: 43))
        }
        #expect(!one.bytes.elementsEqual(reseeded.bytes))
        try await withScratchFolder { folder in
            let path = folder.appendingPathComponent("index.ivf")
            try one.write(to: path)
            let mapped = try PartitionedIndex(contentsOf: path.path)
            for row in stride(from: 0, to: 5_000, by: 250) {
                let query = Array(vectors[(row * d)..<((row + 1) * d)])
                #expect(mapped.search(query, k: 10) == one.search(query, k: 10))
            }
        }
    }

    @Test func corruptOrTruncatedFilesAreRefused() async throws {
        let d = 8
        let vectors = SimilarityTests.clustered(count: 1_000, dimension: d, seed: 6)
        let index = try vectors.withUnsafeBufferPointer { try PartitionedIndex.build($0, dimension: d, metric: .innerProduct) }
        try await withScratchFolder { folder in
            let good = folder.appendingPathComponent("good.ivf")
            try index.write(to: good)
            let bytes = try Data(contentsOf: good)
            func refused(_ data: Data, _ message: String) throws {
                let path = folder.appendingPathComponent("bad-\(UUID().uuidString).ivf")
                try data.write(to: path)
                #expect { try PartitionedIndex(contentsOf: path.path) } throws: { "\($0)".contains(message) }
            }
            try refused(bytes.prefix(bytes.count - 4), "truncated")
            try refused(bytes.prefix(40), "shorter than the header")
            var header = bytes
            header[20] ^= 1
            try refused(header, "header checksum")
            try refused(Data(repeating: 7, count: 500), "bad magic")
            // The last position names row 0 a second time.
            var rows = bytes
            rows.replaceSubrange((rows.count - 4)..<rows.count, with: Data([0, 0, 0, 0]))
            if rows != bytes { try refused(rows, "twice") }
            // A partition start past the next one.
            let layout = PartitionedIndex.Layout(count: 1_000, dimension: d, partitions: index.partitionCount, blocks: index.blockStarts.last!, width: 1)
            var starts = bytes
            starts.replaceSubrange((layout.startsOffset + 4)..<(layout.startsOffset + 8), with: Data([0xff, 0xff, 0, 0]))
            try refused(starts, "partition")
        }
    }
}
