public import DuetCore
import DuetKernels

/// What training produces: dense user and item factors (row-major float32), or a score table
/// for models without factors. Hyperparameters are kept so a bundle can record them.
public struct FactorModel: Sendable {
    public var kind: String
    public var dimension: Int
    public var userCount: Int
    public var itemCount: Int
    public var userFactors: [Float]
    public var itemFactors: [Float]
    /// Item popularity (users per item), used as the fallback list and by the popularity model.
    public var itemPopularity: [Float]
    public var hyperparameters: [String: ParameterValue]
    /// Item-kNN's neighbour lists, for the model that scores from a user's history instead of factors.
    public var itemNeighbours: ItemKNNModel?

    public init(kind: String, dimension: Int, userCount: Int, itemCount: Int, userFactors: [Float], itemFactors: [Float],
                itemPopularity: [Float], hyperparameters: [String: ParameterValue], itemNeighbours: ItemKNNModel? = nil) {
        self.kind = kind
        self.dimension = dimension
        self.userCount = userCount
        self.itemCount = itemCount
        self.userFactors = userFactors
        self.itemFactors = itemFactors
        self.itemPopularity = itemPopularity
        self.hyperparameters = hyperparameters
        self.itemNeighbours = itemNeighbours
    }

    public static func popularity(of matrix: InteractionMatrix) -> [Float] {
        var counts = [Float](repeating: 0, count: matrix.columns)
        for column in matrix.indices { counts[Int(column)] += 1 }
        return counts
    }
}

/// Anything that scores every item for a user: the interface offline evaluation ranks through.
public protocol ItemScorer: Sendable {
    var itemCount: Int { get }
    /// Writes a score for every item into `scores` (count `itemCount`); higher is better.
    func scoreItems(forUser user: Int, history: InteractionMatrix, into scores: UnsafeMutableBufferPointer<Float>)
}

extension FactorModel: ItemScorer {
    public func scoreItems(forUser user: Int, history: InteractionMatrix, into scores: UnsafeMutableBufferPointer<Float>) {
        if let itemNeighbours {
            itemNeighbours.scoreItems(forUser: user, history: history, into: scores)
            return
        }
        if dimension == 0 {
            // Popularity: the same ranking for everyone.
            for item in 0..<itemCount { scores[item] = itemPopularity[item] }
            return
        }
        userFactors.withUnsafeBufferPointer { users in
            itemFactors.withUnsafeBufferPointer { items in
                VectorMath.scoreRows(items.baseAddress!, rowCount: itemCount, dimension: dimension,
                                     query: users.baseAddress! + user * dimension, into: scores.baseAddress!)
            }
        }
    }
}
