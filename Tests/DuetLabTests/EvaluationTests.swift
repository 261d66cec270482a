import DuetCore
import DuetLab
import DuetTestSupport
import DuetTraining
import Foundation
import Testing

/// Fixed scores: item i scores `scores[i]` for every user.
struct FixedScores: ItemScorer {
    let scores: [Float]
    var itemCount: Int { scores.count }
    func scoreItems(forUser user: Int, history: InteractionMatrix, into out: UnsafeMutableBufferPointer<Float>) {
        for (index, score) in scores.enumerated() { out[index] = score }
    }
}

@Suite struct EvaluationTests {
    @Test func metricsMatchAHandComputedExample() {
        // Ranking 0 > 1 > 2 > 3 > 4; item 0 is in train, so the top 3 is [1, 2, 3]; test likes {1, 3}.
        let train = InteractionMatrix(rows: 1, columns: 5, triples: [(0, 0, 1)])
        let test = InteractionMatrix(rows: 1, columns: 5, triples: [(0, 1, 1), (0, 3, 1)])
        let (metrics, perUser) = Evaluator.evaluate(FixedScores(scores: [5, 4, 3, 2, 1]), train: train, test: test, k: 3)
        #expect(metrics.users == 1)
        #expect(metrics.precision == 1)                                       // 2 hits / min(3, 2)
        #expect(abs(metrics.map - (1 + 2.0 / 3) / 2) < 1e-12)                 // (1/1 + 2/3) / 2
        let idcg = 1 + 1 / log2(3.0)
        #expect(abs(metrics.ndcg - 1.5 / idcg) < 1e-12)                       // (1 + 1/2) / IDCG
        #expect(abs(metrics.auc - 5.0 / 6) < 1e-12)                           // (1 + 2·(3 − 1)) / (2·3)
        #expect(metrics.recall == 1)
        #expect(metrics.mrr == 1)
        #expect(abs(metrics.coverage - 3.0 / 5) < 1e-12)
        #expect(perUser.ndcg.count == 1)
    }

    @Test func usersWithoutTestItemsAreSkippedAndMissesCount() {
        let train = InteractionMatrix(rows: 2, columns: 4, triples: [(0, 0, 1), (1, 1, 1)])
        let test = InteractionMatrix(rows: 2, columns: 4, triples: [(0, 3, 1)])
        let (metrics, _) = Evaluator.evaluate(FixedScores(scores: [4, 3, 2, 1]), train: train, test: test, k: 1)
        #expect(metrics.users == 1)
        #expect(metrics.precision == 0 && metrics.ndcg == 0 && metrics.mrr == 0)
    }

    @Test func pairedBootstrapIsSeededAndBracketsTheMean() throws {
        var rng = SplitMix64(seed: 3)
        let baseline = (0..<500).map { _ in rng.uniform() }
        let better = baseline.map { $0 + 0.05 + 0.01 * rng.gaussian() }
        let a = try PairedBootstrap.compare(metric: "ndcg", baseline: baseline, candidate: better)
        let b = try PairedBootstrap.compare(metric: "ndcg", baseline: baseline, candidate: better)
        #expect(a == b)
        #expect(a.lower <= a.difference && a.difference <= a.upper)
        #expect(a.isSignificant && a.lower > 0)
        let same = try PairedBootstrap.compare(metric: "ndcg", baseline: baseline, candidate: baseline.map { $0 + 0.01 * rng.gaussian() })
        #expect(!same.isSignificant)
        #expect(throws: DuetError.self) { try PairedBootstrap.compare(metric: "x", baseline: [1], candidate: [1, 2]) }
    }

    @Test func splitsAreDeterministicAndDisjoint() async throws {
        try await withScratchFolder { folder in
            var rows: [String] = ["user\titem\tweight\tts"]
            for user in 0..<50 { for item in 0..<10 { rows.append("u\(user)\ti\((user + item) % 30)\t1\t\(1_000 + user * 10 + item)") } }
            let file = try writeFile(rows.joined(separator: "\n") + "\n", named: "t.tsv", in: folder)
            let store = SnapshotStore(home: DuetHome(root: folder))
            let info = try #require(try await ImportPipeline.run(Importer(source: .table(file: file, mapping: ColumnMapping(user: "user", item: "item", weight: "weight", time: "ts"))), into: .snapshot(store)).snapshot)
            let snapshot = try store.open(info.hash)

            let random = try Split(snapshot: snapshot, method: .random(testFraction: 0.2, seed: 1))
            #expect(try Split(snapshot: snapshot, method: .random(testFraction: 0.2, seed: 1)).parts == random.parts)
            #expect(try Split(snapshot: snapshot, method: .random(testFraction: 0.2, seed: 2)).parts != random.parts)
            #expect(abs(Double(random.count(.test)) / 500 - 0.2) < 0.06)
            let train = random.matrix(.train, of: snapshot), test = random.matrix(.test, of: snapshot)
            #expect(train.nonZeroCount + test.nonZeroCount == 500)

            let last = try Split(snapshot: snapshot, method: .leaveLastN(count: 2))
            #expect(last.count(.test) == 100)
            let user = try #require(snapshot.userIndex(of: "u7"))
            let testTimes = snapshot.row(user).filter { last.parts[$0] == SplitPart.test.rawValue }.map { snapshot.times[$0] }
            let trainTimes = snapshot.row(user).filter { last.parts[$0] == SplitPart.train.rawValue }.map { snapshot.times[$0] }
            #expect(testTimes.min()! > trainTimes.max()!)

            let temporal = try Split(snapshot: snapshot, method: .temporal(cutoff: 1_400_000))
            #expect(temporal.count(.test) == 100, "users 40–49 are at or after the cut-off")

            let validation = try random.withValidation(fraction: 0.25, seed: 5, snapshot: snapshot)
            #expect(validation.count(.test) == random.count(.test), "tuning never touches test")
            #expect(validation.count(.validation) > 0)
            #expect(throws: DuetError.self) { try Split(snapshot: snapshot, method: .random(testFraction: 1.5, seed: 1)) }
        }
    }
}
