public import DuetCore
import DuetKernels
import Foundation

public struct ItemKNNConfiguration: Sendable, Codable, Hashable {
    public enum Similarity: String, Sendable, Codable, CaseIterable { case cosine, bm25 }
    public var neighbours = 100
    /// BM25 first by default: on Last.fm, cosine of raw play counts is dominated by a few heavy
    /// listeners (nDCG@10 0.151 against 0.230 with BM25; ALS 0.236).
    public var similarity = Similarity.bm25
    /// Added to the cosine's denominator, so a pair seen by few users scores lower than its raw
    /// cosine (a pair with one shared listener is weak evidence, whatever its cosine).
    public var shrinkage: Float = 10
    /// Pairs with fewer shared users than this are not neighbours at all.
    public var minimumSupport = 2
    public var threads = 2

    public init() {}

    public var hyperparameters: [String: ParameterValue] {
        ["neighbours": .int(neighbours), "similarity": .string(similarity.rawValue), "shrinkage": .double(Double(shrinkage)),
         "minimumSupport": .int(minimumSupport)]
    }

    public func validate() throws(DuetError) {
        guard (1...10_000).contains(neighbours) else { throw .invalidValue(field: "neighbours", reason: "\(neighbours) must be in 1…10000") }
        guard shrinkage >= 0, shrinkage.isFinite else { throw .invalidValue(field: "shrinkage", reason: "must be a number ≥ 0") }
        guard minimumSupport >= 1 else { throw .invalidValue(field: "minimum-support", reason: "must be ≥ 1") }
        guard (1...256).contains(threads) else { throw .invalidValue(field: "threads", reason: "\(threads) must be in 1…256") }
    }

    /// Peak memory of a training run beyond the input: the result lists, plus per thread one float
    /// and one count per item, plus the transposed matrix (8 bytes per interaction).
    public func peakBytes(items: Int, interactions: Int) -> Int {
        items * neighbours * 8 + threads * items * 8 + interactions * 8
    }
}

/// Item-to-item neighbours from co-occurrence: for each item, the top K items by the shrunk cosine
/// of their user columns (optionally BM25-weighted first), among items shared by at least the
/// minimum support of users. A user's score for j is Σ over the items i they played of sim(i, j):
/// each played item counts once, as Serve scores it from a bundle (which keeps what was played, not
/// how often). Items no played item lists rank below, by popularity.
public struct ItemKNNModel: ItemScorer {
    public let itemCount: Int
    public let neighbourStart: [Int]
    public let neighbours: [UInt32]
    public let similarities: [Float]
    public let configuration: ItemKNNConfiguration
    /// Users per item, for the order of items no played item lists.
    public let popularity: [Float]
    private let mostPopular: Float

    public init(itemCount: Int, neighbourStart: [Int], neighbours: [UInt32], similarities: [Float], configuration: ItemKNNConfiguration,
                popularity: [Float]) {
        self.itemCount = itemCount
        self.neighbourStart = neighbourStart
        self.neighbours = neighbours
        self.similarities = similarities
        self.configuration = configuration
        self.popularity = popularity
        mostPopular = popularity.max() ?? 0
    }

    /// Below every kNN score (those are positive), in popularity order.
    public static func unlistedScore(popularity: Float, mostPopular: Float) -> Float { -1 + popularity / (mostPopular + 1) }

    public func scoreItems(forUser user: Int, history: InteractionMatrix, into scores: UnsafeMutableBufferPointer<Float>) {
        for item in 0..<itemCount { scores[item] = Self.unlistedScore(popularity: popularity[item], mostPopular: mostPopular) }
        guard user < history.rows else { return }
        for entry in history.row(user) {
            let item = Int(history.indices[entry])
            for slot in neighbourStart[item]..<neighbourStart[item + 1] {
                let j = Int(neighbours[slot])
                scores[j] = max(scores[j], 0) + similarities[slot]
            }
        }
    }

    /// The neighbours of one item, most similar first.
    public func neighbours(of item: Int) -> [(item: Int, similarity: Float)] {
        (neighbourStart[item]..<neighbourStart[item + 1]).map { (Int(neighbours[$0]), similarities[$0]) }
    }
}

public enum ItemKNN {
    public static func train(_ raw: InteractionMatrix, configuration: ItemKNNConfiguration,
                             progress: ((Int, Int) -> Void)? = nil) -> ItemKNNModel {
        let userItems = configuration.similarity == .bm25 ? Weighting.bm25.apply(to: raw) : raw
        let itemUsers = userItems.transposed()
        let items = raw.columns
        let norms = (0..<items).map { item in
            itemUsers.row(item).reduce(Float(0)) { $0 + itemUsers.values[$1] * itemUsers.values[$1] }.squareRoot()
        }
        let k = configuration.neighbours, shrinkage = configuration.shrinkage, minimumSupport = Int32(configuration.minimumSupport)
        let results = ResultSlots<[(UInt32, Float)]>(count: items)
        Parallel.chunks(items, threads: configuration.threads, chunk: 64) { range, _ in
            var accumulator = [Float](repeating: 0, count: items)
            var shared = [Int32](repeating: 0, count: items)
            var touched: [Int] = []
            for item in range {
                for entry in itemUsers.row(item) {
                    let user = Int(itemUsers.indices[entry])
                    let weight = itemUsers.values[entry]
                    for other in userItems.row(user) {
                        let j = Int(userItems.indices[other])
                        if j == item { continue }
                        if shared[j] == 0 { touched.append(j) }
                        shared[j] += 1
                        accumulator[j] += weight * userItems.values[other]
                    }
                }
                var heap = TopK(k)
                for j in touched {
                    let denominator = norms[item] * norms[j] + shrinkage
                    if denominator > 0, shared[j] >= minimumSupport { heap.push(accumulator[j] / denominator, Int32(j)) }
                    accumulator[j] = 0
                    shared[j] = 0
                }
                touched.removeAll(keepingCapacity: true)
                results[item] = heap.sorted().map { (UInt32($0.id), $0.score) }
            }
        }
        var start = [0], neighbours: [UInt32] = [], similarities: [Float] = []
        for item in 0..<items {
            for (j, similarity) in results[item] ?? [] {
                neighbours.append(j)
                similarities.append(similarity)
            }
            start.append(neighbours.count)
        }
        progress?(items, items)
        return ItemKNNModel(itemCount: items, neighbourStart: start, neighbours: neighbours, similarities: similarities,
                            configuration: configuration, popularity: FactorModel.popularity(of: raw))
    }

    /// Item-kNN as a recommender: the neighbour lists, with the popularity every bundle carries.
    public static func recommender(_ raw: InteractionMatrix, configuration: ItemKNNConfiguration) -> FactorModel {
        let model = train(raw, configuration: configuration)
        return FactorModel(kind: kind, dimension: 0, userCount: raw.rows, itemCount: raw.columns, userFactors: [], itemFactors: [],
                           itemPopularity: model.popularity, hyperparameters: configuration.hyperparameters, itemNeighbours: model)
    }

    /// The model kind bundles record.
    public static let kind = "item-knn"
}
