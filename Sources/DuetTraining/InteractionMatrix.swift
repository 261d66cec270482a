public import DuetCore
import Foundation

/// A sparse rows × columns matrix in CSR form: users × items for training, or its transpose.
public struct InteractionMatrix: Sendable {
    public let rows: Int
    public let columns: Int
    public var rowStart: [Int]
    public var indices: [UInt32]
    public var values: [Float]

    public init(rows: Int, columns: Int, rowStart: [Int], indices: [UInt32], values: [Float]) {
        precondition(rowStart.count == rows + 1 && indices.count == values.count && rowStart.last == indices.count)
        self.rows = rows
        self.columns = columns
        self.rowStart = rowStart
        self.indices = indices
        self.values = values
    }

    /// Builds from unsorted (row, column, value) triples; duplicates are summed.
    public init(rows: Int, columns: Int, triples: [(row: Int, column: Int, value: Float)]) {
        var counts = [Int](repeating: 0, count: rows + 1)
        for triple in triples { counts[triple.row + 1] += 1 }
        for row in 0..<rows { counts[row + 1] += counts[row] }
        var fill = counts
        var indices = [UInt32](repeating: 0, count: triples.count)
        var values = [Float](repeating: 0, count: triples.count)
        for triple in triples {
            indices[fill[triple.row]] = UInt32(triple.column)
            values[fill[triple.row]] = triple.value
            fill[triple.row] += 1
        }
        var outStart = [0], outIndices: [UInt32] = [], outValues: [Float] = []
        for row in 0..<rows {
            let entries = (counts[row]..<counts[row + 1]).map { (indices[$0], values[$0]) }.sorted { $0.0 < $1.0 }
            for (column, value) in entries {
                if outIndices.count > outStart[row], outIndices.last == column {
                    outValues[outValues.count - 1] += value
                } else {
                    outIndices.append(column)
                    outValues.append(value)
                }
            }
            outStart.append(outIndices.count)
        }
        self.init(rows: rows, columns: columns, rowStart: outStart, indices: outIndices, values: outValues)
    }

    /// The whole snapshot as users × items with its summed weights.
    public init(snapshot: Snapshot) {
        self.init(rows: snapshot.userCount, columns: snapshot.itemCount, rowStart: snapshot.rowStart.map { Int($0) },
                  indices: Array(snapshot.items), values: Array(snapshot.weights))
    }

    public var nonZeroCount: Int { indices.count }

    public func row(_ row: Int) -> Range<Int> { rowStart[row]..<rowStart[row + 1] }

    public func transposed() -> InteractionMatrix {
        var counts = [Int](repeating: 0, count: columns + 1)
        for column in indices { counts[Int(column) + 1] += 1 }
        for column in 0..<columns { counts[column + 1] += counts[column] }
        var fill = counts
        var outIndices = [UInt32](repeating: 0, count: indices.count)
        var outValues = [Float](repeating: 0, count: indices.count)
        for row in 0..<rows {
            for entry in rowStart[row]..<rowStart[row + 1] {
                let column = Int(indices[entry])
                outIndices[fill[column]] = UInt32(row)
                outValues[fill[column]] = values[entry]
                fill[column] += 1
            }
        }
        return InteractionMatrix(rows: columns, columns: rows, rowStart: counts, indices: outIndices, values: outValues)
    }

    /// The same pattern with each value replaced.
    public func mapValues(_ transform: (Float) -> Float) -> InteractionMatrix {
        InteractionMatrix(rows: rows, columns: columns, rowStart: rowStart, indices: indices, values: values.map(transform))
    }
}

/// How raw weights (play counts, ms played) become ALS confidences before `alpha` scales them.
public enum Weighting: String, Sendable, Codable, CaseIterable {
    case raw
    /// log(1 + w): tames heavy listeners' play counts.
    case log1p
    /// Okapi BM25 over users × items (K1 = 100, B = 0.8, as implicit's `bm25_weight`): down-weights
    /// popular items (idf) and long histories (length normalisation).
    case bm25

    public func apply(to matrix: InteractionMatrix) -> InteractionMatrix {
        switch self {
        case .raw:
            return matrix
        case .log1p:
            return matrix.mapValues { Foundation.log1p($0) }
        case .bm25:
            let k1: Float = 100, b: Float = 0.8
            var documentFrequency = [Float](repeating: 0, count: matrix.columns)
            for column in matrix.indices { documentFrequency[Int(column)] += 1 }
            let n = Float(matrix.rows)
            let idf = documentFrequency.map { Foundation.log(n) - Foundation.log1p($0) }
            var rowSums = [Float](repeating: 0, count: matrix.rows)
            for row in 0..<matrix.rows { rowSums[row] = matrix.row(row).reduce(0) { $0 + matrix.values[$1] } }
            let average = max(rowSums.reduce(0, +) / max(n, 1), 1e-9)
            var out = matrix
            for row in 0..<matrix.rows {
                let lengthNorm = (1 - b) + b * rowSums[row] / average
                for entry in matrix.row(row) {
                    let w = matrix.values[entry]
                    out.values[entry] = w * (k1 + 1) / (k1 * lengthNorm + w) * idf[Int(matrix.indices[entry])]
                }
            }
            return out
        }
    }
}
