public import DuetCore
import DuetKernels
import Foundation

/// Hyperparameters of implicit-feedback ALS (Hu, Koren & Volinsky, "Collaborative Filtering for
/// Implicit Feedback Datasets", ICDM 2008).
public struct ALSConfiguration: Sendable, Codable, Hashable {
    public var factors = 64
    public var regularization: Float = 1
    public var alpha: Float = 2
    public var iterations = 15
    /// Two warm-started steps, not implicit's three: on validation splits carved from the training data
    /// (Last.fm and bench/make-plays.py) they ranked better with the zero-mean start, and cost less.
    public var cgSteps = 2
    public var weighting = Weighting.log1p
    public var seed: UInt64 = 42
    public var threads = 1
    /// Computing the loss costs about one extra half-iteration; off unless asked.
    public var computeLoss = false

    public init() {}

    public func validate() throws(DuetError) {
        guard (1...1_024).contains(factors) else { throw .invalidValue(field: "factors", reason: "\(factors) must be in 1…1024") }
        guard regularization >= 0, regularization.isFinite else { throw .invalidValue(field: "regularization", reason: "must be ≥ 0") }
        guard alpha > 0, alpha.isFinite else { throw .invalidValue(field: "alpha", reason: "must be > 0") }
        guard iterations >= 1 else { throw .invalidValue(field: "iterations", reason: "must be ≥ 1") }
        guard (1...64).contains(cgSteps) else { throw .invalidValue(field: "cg-steps", reason: "must be in 1…64") }
        guard threads >= 1 else { throw .invalidValue(field: "threads", reason: "must be ≥ 1") }
    }

    public var hyperparameters: [String: ParameterValue] {
        ["factors": .int(factors), "regularization": .double(Double(regularization)), "alpha": .double(Double(alpha)),
         "iterations": .int(iterations), "cgSteps": .int(cgSteps), "weighting": .string(weighting.rawValue), "seed": .int(Int(seed))]
    }
}

/// Progress of an iterative trainer: iteration done (from 1) and, when computed, the loss.
public typealias TrainingProgress = @Sendable (_ iteration: Int, _ of: Int, _ loss: Double?) -> Void

public enum ALS {
    /// Trains on a users × items matrix of raw weights. Confidence c = alpha·w', w' the weighted value;
    /// preference 1 on observed pairs; loss Σ c(p − xᵀy)² + λ(‖x‖² + ‖y‖²) over all pairs.
    public static func train(_ raw: InteractionMatrix, configuration: ALSConfiguration,
                             progress: TrainingProgress? = nil) throws -> FactorModel {
        try configuration.validate()
        let d = configuration.factors
        let alpha = configuration.alpha
        let userItems = configuration.weighting.apply(to: raw).mapValues { $0 * alpha }
        let itemUsers = userItems.transposed()
        var userFactors = initialFactors(count: raw.rows, dimension: d, seed: configuration.seed, stream: 1)
        var itemFactors = initialFactors(count: raw.columns, dimension: d, seed: configuration.seed, stream: 2)
        for iteration in 1...configuration.iterations {
            solve(userItems, x: &userFactors, y: itemFactors, configuration: configuration)
            solve(itemUsers, x: &itemFactors, y: userFactors, configuration: configuration)
            let loss = configuration.computeLoss
                ? Self.loss(userItems, userFactors: userFactors, itemFactors: itemFactors, dimension: d,
                            regularization: configuration.regularization, threads: configuration.threads)
                : nil
            progress?(iteration, configuration.iterations, loss)
        }
        return FactorModel(kind: "als", dimension: d, userCount: raw.rows, itemCount: raw.columns, userFactors: userFactors,
                           itemFactors: itemFactors, itemPopularity: FactorModel.popularity(of: raw),
                           hyperparameters: configuration.hyperparameters)
    }

    /// Standard normal, seeded, so one thread gives the same model every time. implicit starts from
    /// uniform [0, 0.01): every vector then points near (1, …, 1), the first solves see an almost rank-one
    /// Gram matrix, and a few warm-started CG steps per pass never fully leave it (bench/als-validate.py).
    static func initialFactors(count: Int, dimension: Int, seed: UInt64, stream: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed, stream)
        return (0..<(count * dimension)).map { _ in Float(rng.gaussian()) }
    }

    /// One half-iteration: every row of `x` re-solved against fixed `y`.
    static func solve(_ matrix: InteractionMatrix, x: inout [Float], y: [Float], configuration: ALSConfiguration) {
        let d = configuration.factors
        let gram = y.withUnsafeBufferPointer {
            Gram.compute($0, rows: matrix.columns, dimension: d, ridge: configuration.regularization, threads: configuration.threads)
        }
        let threads = configuration.threads
        let steps = configuration.cgSteps
        x.withUnsafeMutableBufferPointer { xBuffer in
            let xs = UnsafeMutableSendablePointer(xBuffer.baseAddress!)
            y.withUnsafeBufferPointer { yBuffer in
                let ys = UnsafeSendablePointer(yBuffer.baseAddress!)
                gram.withUnsafeBufferPointer { gramBuffer in
                    let gs = UnsafeSendablePointer(gramBuffer.baseAddress!)
                    matrix.indices.withUnsafeBufferPointer { indexBuffer in
                        let indices = UnsafeSendablePointer(indexBuffer.baseAddress ?? UnsafePointer(bitPattern: 8)!)
                        matrix.values.withUnsafeBufferPointer { valueBuffer in
                            let values = UnsafeSendablePointer(valueBuffer.baseAddress ?? UnsafePointer(bitPattern: 8)!)
                            matrix.rowStart.withUnsafeBufferPointer { startBuffer in
                                let starts = UnsafeSendablePointer(startBuffer.baseAddress!)
                                let scratches = ScratchPool(threads: threads, dimension: d)
                                Parallel.chunks(matrix.rows, threads: threads, chunk: 32) { range, worker in
                                    scratches.with(worker) { scratch in
                                        for row in range {
                                            let start = starts.pointer[row]
                                            Solvers.implicitALSStep(
                                                x: xs.pointer + row * d, gram: gs.pointer, factors: ys.pointer,
                                                items: indices.pointer + start, confidences: values.pointer + start,
                                                count: starts.pointer[row + 1] - start, dimension: d, steps: steps, scratch: scratch)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Σ c(1 − s)² over observed pairs + Σ s² over unobserved ones + λ(‖X‖² + ‖Y‖²), divided by the
    /// total weight of all pairs (observed confidence plus one per unobserved pair), as implicit reports it.
    public static func loss(_ confidences: InteractionMatrix, userFactors: [Float], itemFactors: [Float], dimension d: Int,
                            regularization: Float, threads: Int = 1) -> Double {
        let gram = itemFactors.withUnsafeBufferPointer { Gram.compute($0, rows: confidences.columns, dimension: d, threads: threads) }
        var total = 0.0
        var totalConfidence = 0.0
        var userNorm = 0.0
        var scratch = [Float](repeating: 0, count: d)
        userFactors.withUnsafeBufferPointer { xs in
            itemFactors.withUnsafeBufferPointer { ys in
                for user in 0..<confidences.rows {
                    let x = xs.baseAddress! + user * d
                    scratch.withUnsafeMutableBufferPointer { gx in
                        gram.withUnsafeBufferPointer { VectorMath.matvec($0.baseAddress!, x, gx.baseAddress!, d) }
                        total += Double(VectorMath.dot(gx.baseAddress!, x, d))
                    }
                    for entry in confidences.row(user) {
                        let c = Double(confidences.values[entry])
                        let s = Double(VectorMath.dot(x, ys.baseAddress! + Int(confidences.indices[entry]) * d, d))
                        total += c * (1 - s) * (1 - s) - s * s
                        totalConfidence += c
                    }
                    userNorm += Double(VectorMath.normSquared(x, d))
                }
            }
        }
        let itemNorm = itemFactors.reduce(0.0) { $0 + Double($1 * $1) }
        total += Double(regularization) * (userNorm + itemNorm)
        let unobserved = Double(confidences.rows) * Double(confidences.columns) - Double(confidences.nonZeroCount)
        return total / (totalConfidence + unobserved)
    }
}

/// One scratch set per worker thread, allocated once per half-iteration.
final class ScratchPool: @unchecked Sendable {
    private var slots: [Solvers.ScratchBox]

    init(threads: Int, dimension: Int) {
        slots = (0..<max(1, threads)).map { _ in Solvers.ScratchBox(dimension: dimension) }
    }

    func with(_ worker: Int, _ body: (borrowing Solvers.Scratch) -> Void) {
        body(slots[worker].scratch)
    }
}

extension Solvers {
    /// A class holder, so a noncopyable scratch can live in an array.
    final class ScratchBox {
        let scratch: Scratch
        init(dimension: Int) { scratch = Scratch(dimension: dimension) }
    }
}
