public import DuetCore
import DuetKernels
import Foundation

public struct ItemKNNConfiguration: Sendable, Codable, Hashable {
    public enum Similarity: String, Sendable, Codable, CaseIterable { case cosine, bm25 }
    public var neighbours = 100
    public var similarity = Similarity.cosine
    public var threads = 1

    public init() {}

    public var hyperparameters: [String: ParameterValue] {
        ["neighbours": .int(neighbours), "similarity": .string(similarity.rawValue)]
    }
}

/// Item-to-item neighbours from co-occurrence: for each item, the top K items by cosine of their
/// user columns (optionally BM25-weighted first). A user's score for j is Σ over their items i of
/// w(u,i)·sim(i, j).
public struct ItemKNNModel: ItemScorer {
    public let itemCount: Int
    public let neighbourStart: [Int]
    public let neighbours: [UInt32]
    public let similarities: [Float]
    public let configuration: ItemKNNConfiguration

    public func scoreItems(forUser user: Int, history: InteractionMatrix, into scores: UnsafeMutableBufferPointer<Float>) {
        for item in 0..<itemCount { scores[item] = 0 }
        guard user < history.rows else { return }
        for entry in history.row(user) {
            let item = Int(history.indices[entry])
            let weight = history.values[entry]
            for slot in neighbourStart[item]..<neighbourStart[item + 1] {
                scores[Int(neighbours[slot])] += weight * similarities[slot]
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
        let k = configuration.neighbours
        let results = ResultSlots<[(UInt32, Float)]>(count: items)
        Parallel.chunks(items, threads: configuration.threads, chunk: 64) { range, _ in
            var accumulator = [Float](repeating: 0, count: items)
            var touched: [Int] = []
            for item in range {
                for entry in itemUsers.row(item) {
                    let user = Int(itemUsers.indices[entry])
                    let weight = itemUsers.values[entry]
                    for other in userItems.row(user) {
                        let j = Int(userItems.indices[other])
                        if j == item { continue }
                        if accumulator[j] == 0 { touched.append(j) }
                        accumulator[j] += weight * userItems.values[other]
                    }
                }
                var heap = TopK(k)
                for j in touched {
                    let denominator = norms[item] * norms[j]
                    if denominator > 0 { heap.push(accumulator[j] / denominator, Int32(j)) }
                    accumulator[j] = 0
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
                            configuration: configuration)
    }
}

