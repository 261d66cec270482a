import DuetCore
import DuetTraining
import Testing

@Suite struct TrainingTests {
    /// Two taste groups over 40 items, so there is structure to learn.
    static func matrix(users: Int = 200, items: Int = 40, seed: UInt64 = 9) -> InteractionMatrix {
        var rng = SplitMix64(seed: seed)
        var triples: [(row: Int, column: Int, value: Float)] = []
        for user in 0..<users {
            let group = user % 2
            for _ in 0..<8 {
                let item = group * items / 2 + rng.below(items / 2)
                triples.append((user, item, Float(1 + rng.below(5))))
            }
        }
        return InteractionMatrix(rows: users, columns: items, triples: triples)
    }

    static func alsConfiguration(threads: Int = 1, loss: Bool = false) -> ALSConfiguration {
        var configuration = ALSConfiguration()
        configuration.factors = 8
        configuration.iterations = 8
        configuration.threads = threads
        configuration.computeLoss = loss
        return configuration
    }

    @Test func alsLossDecreases() throws {
        let losses = LossLog()
        _ = try ALS.train(Self.matrix(), configuration: Self.alsConfiguration(loss: true)) { _, _, loss in
            if let loss { losses.append(loss) }
        }
        let values = losses.values
        #expect(values.count == 8)
        #expect(values.last! < values.first!)
        for (earlier, later) in zip(values, values.dropFirst()) { #expect(later <= earlier * 1.001, "loss rose: \(earlier) → \(later)") }
    }

    @Test func alsIsDeterministicAndThreadIndependent() throws {
        let one = try ALS.train(Self.matrix(), configuration: Self.alsConfiguration())
        let again = try ALS.train(Self.matrix(), configuration: Self.alsConfiguration())
        let two = try ALS.train(Self.matrix(), configuration: Self.alsConfiguration(threads: 2))
        #expect(one.userFactors == again.userFactors && one.itemFactors == again.itemFactors)
        #expect(one.itemFactors == two.itemFactors, "each row is solved independently, so threads do not change the result")
    }

    @Test func alsGivesRowsWithoutDataZeroFactors() throws {
        // Two items no one played and one user with no plays, as a train/test split leaves them.
        let plays = Self.matrix()
        let padded = InteractionMatrix(rows: plays.rows + 1, columns: plays.columns + 2,
                                       triples: (0..<plays.rows).flatMap { user in plays.row(user).map { (user, Int(plays.indices[$0]), plays.values[$0]) } })
        let model = try ALS.train(padded, configuration: Self.alsConfiguration())
        let d = model.dimension
        for item in plays.columns..<padded.columns { #expect(model.itemFactors[item * d..<(item + 1) * d].allSatisfy { $0 == 0 }, "item \(item)") }
        #expect(model.userFactors[plays.rows * d..<(plays.rows + 1) * d].allSatisfy { $0 == 0 })
        #expect(model.itemFactors[0..<d].contains { $0 != 0 }, "an item with plays keeps its factors")
    }

    @Test func alsLearnsTheGroups() throws {
        let model = try ALS.train(Self.matrix(), configuration: Self.alsConfiguration())
        var scores = [Float](repeating: 0, count: 40)
        scores.withUnsafeMutableBufferPointer { model.scoreItems(forUser: 0, history: Self.matrix(), into: $0) }
        let ownGroup = scores[0..<20].reduce(0, +) / 20, otherGroup = scores[20..<40].reduce(0, +) / 20
        #expect(ownGroup > otherGroup + 0.2, "user 0 should prefer its own group: \(ownGroup) vs \(otherGroup)")
    }

    @Test func bprIsDeterministicWithOneThreadAndLearns() throws {
        var configuration = BPRConfiguration()
        configuration.factors = 8
        configuration.iterations = 30
        let one = try BPR.train(Self.matrix(), configuration: configuration)
        let again = try BPR.train(Self.matrix(), configuration: configuration)
        #expect(one.itemFactors == again.itemFactors)
        var scores = [Float](repeating: 0, count: 40)
        scores.withUnsafeMutableBufferPointer { one.scoreItems(forUser: 1, history: Self.matrix(), into: $0) }
        #expect(scores[20..<40].reduce(0, +) > scores[0..<20].reduce(0, +))
    }

    @Test func itemKNNFindsCoOccurringItems() {
        // Items 0 and 1 always together, 2 and 3 always together.
        let triples: [(row: Int, column: Int, value: Float)] = [(0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1), (2, 2, 1), (2, 3, 1), (3, 2, 1), (3, 3, 1), (4, 1, 1), (4, 2, 1)]
        var configuration = ItemKNNConfiguration()
        configuration.similarity = .cosine
        configuration.neighbours = 2
        configuration.shrinkage = 0
        configuration.minimumSupport = 1
        let matrix = InteractionMatrix(rows: 5, columns: 4, triples: triples)
        let model = ItemKNN.train(matrix, configuration: configuration)
        #expect(model.neighbours(of: 0).first?.item == 1)
        #expect(model.neighbours(of: 3).first?.item == 2)
        #expect(abs(model.neighbours(of: 0).first!.similarity - Float(2) / (Float(2).squareRoot() * Float(3).squareRoot())) < 1e-5)
        // Items 1 and 2 share one user (user 4): a support of 2 drops the pair, shrinkage lowers every cosine.
        #expect(model.neighbours(of: 1).contains { $0.item == 2 })
        configuration.minimumSupport = 2
        configuration.shrinkage = 10
        let strict = ItemKNN.train(matrix, configuration: configuration)
        #expect(!strict.neighbours(of: 1).contains { $0.item == 2 })
        #expect(abs(strict.neighbours(of: 0).first!.similarity - Float(2) / (Float(2).squareRoot() * Float(3).squareRoot() + 10)) < 1e-5)
    }

    @Test func weightingTransformsValues() {
        let matrix = InteractionMatrix(rows: 2, columns: 3, triples: [(0, 0, 3), (0, 1, 1), (1, 0, 7)])
        #expect(Weighting.log1p.apply(to: matrix).values.map { ($0 * 1000).rounded() } == [1386, 693, 2079])
        let bm25 = Weighting.bm25.apply(to: matrix)
        #expect(bm25.values.count == 3)
        #expect(bm25.values[1] > bm25.values[0] / 3, "the rarer item keeps relatively more weight")
        let transposed = matrix.transposed()
        #expect(transposed.rows == 3 && transposed.row(0).count == 2 && transposed.transposed().values == matrix.values)
        #expect(InteractionMatrix(rows: 1, columns: 2, triples: [(0, 1, 2), (0, 1, 3)]).values == [5], "duplicates are summed")
    }

    @Test func invalidConfigurationIsRefused() {
        var configuration = ALSConfiguration()
        configuration.factors = 0
        #expect(throws: DuetError.self) { try ALS.train(Self.matrix(), configuration: configuration) }
    }
}

final class LossLog: @unchecked Sendable {
    private(set) var values: [Double] = []
    func append(_ value: Double) { values.append(value) }
}
