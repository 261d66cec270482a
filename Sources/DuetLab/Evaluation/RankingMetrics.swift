import DuetCore
import DuetKernels
public import DuetTraining
import Foundation

/// Ranking metrics at k, defined exactly as implicit's `ranking_metrics_at_k` so published numbers
/// compare. For each test user with at least one test item, rank all items by score with the
/// user's train items excluded, take the top k, and with `likes` = the user's test items:
///
/// - precision@k = Σ hits / Σ min(k, |likes|), pooled over users (not a mean of ratios);
/// - MAP@k = mean over users of (Σ over hit ranks i of hits-so-far / i) / min(k, |likes|);
/// - NDCG@k = mean over users of DCG / IDCG, gain 1/log2(rank + 1), IDCG over min(k, |likes|) hits;
/// - AUC = mean over users of implicit's truncated AUC: pairs (positive above negative) counted
///   within the top k, the rest credited as (hits + |likes|)/2 per remaining negative, divided by
///   |likes|·(items − |likes|).
///
/// Beyond implicit:
/// - recall@k = mean over users of hits / |likes|;
/// - MRR@k = mean over users of 1 / rank of the first hit (0 when none in the top k);
/// - coverage = distinct items recommended / items;
/// - novelty = mean over recommended items of −log2(popularity share), popularity = train users per item / train users;
/// - intra-list diversity = mean over lists of the mean pairwise (1 − cosine) of item factors (factor models only).
public struct RankingMetrics: Codable, Sendable, Hashable {
    public var k: Int
    public var users: Int
    public var precision: Double
    public var map: Double
    public var ndcg: Double
    public var auc: Double
    public var recall: Double
    public var mrr: Double
    public var coverage: Double
    public var novelty: Double
    public var diversity: Double?

    public static let names = ["precision", "map", "ndcg", "auc", "recall", "mrr"]

    public func value(_ name: String) -> Double? {
        switch name {
        case "precision": precision
        case "map": map
        case "ndcg": ndcg
        case "auc": auc
        case "recall": recall
        case "mrr": mrr
        case "coverage": coverage
        case "novelty": novelty
        case "diversity": diversity
        default: nil
        }
    }
}

/// Per-user values behind the means, for paired comparison: index i is the i-th evaluated user.
public struct PerUserMetrics: Sendable {
    public var users: [Int] = []
    public var hits: [Double] = []
    public var precisionDenominator: [Double] = []
    public var ap: [Double] = []
    public var ndcg: [Double] = []
    public var auc: [Double] = []
    public var recall: [Double] = []
    public var reciprocalRank: [Double] = []

    /// The per-user series of a metric, for metrics that are means over users. Precision is pooled,
    /// so its per-user contribution is hits scaled by the mean denominator: its mean equals the pooled value.
    public func series(_ name: String) -> [Double]? {
        switch name {
        case "map": return ap
        case "ndcg": return ndcg
        case "auc": return auc
        case "recall": return recall
        case "mrr": return reciprocalRank
        case "precision":
            let meanDenominator = precisionDenominator.reduce(0, +) / Double(max(precisionDenominator.count, 1))
            return hits.map { $0 / max(meanDenominator, 1e-12) }
        default: return nil
        }
    }
}

public enum Evaluator {
    /// Ranks every item for every test user. `train` supplies both the exclusions and the history;
    /// `test` the relevant items. Both are users × items over the same index space.
    public static func evaluate(_ model: any ItemScorer, train: InteractionMatrix, test: InteractionMatrix, k: Int = 10,
                                itemFactors: (factors: [Float], dimension: Int)? = nil, threads: Int = 1) -> (RankingMetrics, PerUserMetrics) {
        let items = model.itemCount
        let users = (0..<test.rows).filter { !test.row($0).isEmpty }
        let cg = (0..<k).map { 1 / Foundation.log2(Double($0) + 2) }
        var cgSum = cg
        for i in 1..<max(k, 1) where i < cgSum.count { cgSum[i] += cgSum[i - 1] }
        let lists = ResultSlots<[Int]>(count: users.count)
        Parallel.chunks(users.count, threads: threads, chunk: 16) { range, _ in
            var scores = [Float](repeating: 0, count: items)
            var excluded = [Bool](repeating: false, count: items)
            for position in range {
                let user = users[position]
                scores.withUnsafeMutableBufferPointer { model.scoreItems(forUser: user, history: train, into: $0) }
                if user < train.rows { for entry in train.row(user) { excluded[Int(train.indices[entry])] = true } }
                let top = scores.withUnsafeBufferPointer { TopK.select($0, k: k) { excluded[$0] } }
                if user < train.rows { for entry in train.row(user) { excluded[Int(train.indices[entry])] = false } }
                lists[position] = top.map { Int($0.id) }
            }
        }
        var perUser = PerUserMetrics()
        var relevant = 0.0, precisionDivisor = 0.0
        var recommended = Set<Int>()
        var novelty = 0.0, noveltyCount = 0
        let popularity = FactorModel.popularity(of: train)
        let trainUsers = Double(max(train.rows, 1))
        var diversity = 0.0, diversityLists = 0
        for (position, user) in users.enumerated() {
            let ids = lists[position] ?? []
            let likes = Set(test.row(user).map { Int(test.indices[$0]) })
            let positives = likes.count
            let negatives = items - positives
            var hit = 0.0, miss = 0.0, ap = 0.0, auc = 0.0, ndcg = 0.0, reciprocal = 0.0
            let idcg = cgSum[min(k, positives) - 1]
            for i in 0..<k {
                if i < ids.count, likes.contains(ids[i]) {
                    hit += 1
                    ap += hit / Double(i + 1)
                    ndcg += cg[i] / idcg
                    if reciprocal == 0 { reciprocal = 1 / Double(i + 1) }
                } else {
                    miss += 1
                    auc += hit
                }
            }
            auc += ((hit + Double(positives)) / 2) * (Double(negatives) - miss)
            relevant += hit
            precisionDivisor += Double(min(k, positives))
            perUser.users.append(user)
            perUser.hits.append(hit)
            perUser.precisionDenominator.append(Double(min(k, positives)))
            perUser.ap.append(ap / Double(min(k, positives)))
            perUser.ndcg.append(ndcg)
            perUser.auc.append(negatives > 0 ? auc / (Double(positives) * Double(negatives)) : 0)
            perUser.recall.append(hit / Double(positives))
            perUser.reciprocalRank.append(reciprocal)
            for id in ids {
                recommended.insert(id)
                let share = max(Double(popularity[id]), 0.5) / trainUsers
                novelty -= Foundation.log2(share)
                noveltyCount += 1
            }
            if let itemFactors, ids.count > 1 {
                diversity += intraListDiversity(ids, factors: itemFactors.factors, dimension: itemFactors.dimension)
                diversityLists += 1
            }
        }
        let count = Double(max(users.count, 1))
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / count }
        let metrics = RankingMetrics(
            k: k, users: users.count, precision: precisionDivisor > 0 ? relevant / precisionDivisor : 0,
            map: mean(perUser.ap), ndcg: mean(perUser.ndcg), auc: mean(perUser.auc), recall: mean(perUser.recall),
            mrr: mean(perUser.reciprocalRank), coverage: Double(recommended.count) / Double(max(items, 1)),
            novelty: noveltyCount > 0 ? novelty / Double(noveltyCount) : 0,
            diversity: diversityLists > 0 ? diversity / Double(diversityLists) : nil)
        return (metrics, perUser)
    }

    static func intraListDiversity(_ ids: [Int], factors: [Float], dimension d: Int) -> Double {
        var total = 0.0, pairs = 0.0
        factors.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress!
            for a in 0..<ids.count {
                for b in (a + 1)..<ids.count {
                    let x = base + ids[a] * d, y = base + ids[b] * d
                    let norms = (VectorMath.normSquared(x, d) * VectorMath.normSquared(y, d)).squareRoot()
                    let cosine = norms > 0 ? Double(VectorMath.dot(x, y, d) / norms) : 0
                    total += 1 - cosine
                    pairs += 1
                }
            }
        }
        return pairs > 0 ? total / pairs : 0
    }
}

