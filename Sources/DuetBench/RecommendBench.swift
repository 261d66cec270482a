import ArgumentParser
import DuetCore
import DuetKernels
import DuetServe
import DuetSimilarity
import DuetStore
import DuetCommandLine
import Foundation
import Logging

/// `duet bench recommend`: the recommendation path in-process, without HTTP, to see where a
/// request's time goes (ranking vs. response encoding).
struct RecommendBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recommend",
        abstract: "Time Serve's recommendation path in-process against a home's production bundle (no HTTP)."
    )
    @OptionGroup var home: HomeOptions
    @Option(help: "Requests.") var requests: Int = 20_000
    @Option(help: "Items per list.") var n: Int = 20
    @Option(help: "HNSW beam width for recommendations (duet serve --ef).") var ef: Int = ServeSettings.defaultRecommendationBeam
    @Option(help: "Users whose lists are compared with the exact scan's for recall.") var recallUsers: Int = 2_000
    @Option(help: "Also time the same requests explained: 'bundle' (its own similarity) or a published index's name.") var explain: String?
    @OptionGroup var output: OutputOptions

    struct Result: Codable {
        var requests: Int
        var rankMicros: Double
        var encodeMicros: Double
        /// The exact length-ordered scan alone (no exposure, no response), with Serve's exclusions.
        var scanMicros: Double?
        var index: String
        /// Share of the requests each index answered ("exact" when the length bound proved the list).
        var answeredBy: [String: Double]
        var ef: Int
        /// Share of the exact scan's top n (same exclusions) that the served lists hold.
        var recall: Double?
        /// With --explain: the same requests explained, and the median training history they were explained from.
        var explainedRankMicros: Double?
        var explainedEncodeMicros: Double?
        var medianHistory: Int?
    }

    func validate() throws {
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
        guard (1...1_000).contains(n) else { throw ValidationError("--n must be 1–1000") }
        guard ef >= 1 else { throw ValidationError("--ef must be at least 1") }
        guard recallUsers >= 0 else { throw ValidationError("--recall-users must be 0 or more") }
    }

    func run() async throws {
        let duetHome = home.resolved
        let source = try SQLiteServingSource(path: duetHome.registryPath.path)
        let scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("duet-bench-\(UUID().uuidString.prefix(8)).sqlite")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let log = try SQLiteEventLog(path: scratch.path)
        var configuration = ServeSettings(home: duetHome)
        configuration.recommendationBeam = ef
        let (_, components) = try await buildServe(configuration: configuration, source: source, eventSink: log,
                                                   prometheus: nil, logger: Logger(label: "bench"))
        guard let bundle = components.store.current.production?.bundle else { throw DuetError.refused("nothing is in production") }
        let users = bundle.userIDs
        let clock = ContinuousClock()
        /// Per request: ranking (with exposure logging) and JSON encoding, in seconds over all.
        func timed(_ explanation: ExplanationSource?) async throws -> (responses: [RecommendationResponse], rank: Double, encode: Double) {
            var responses: [RecommendationResponse] = []
            responses.reserveCapacity(requests)
            let start = clock.now
            for request in 0..<requests {
                responses.append(try components.recommender.recommend(user: users[request % users.count], n: n, exclude: [], context: nil,
                                                                      explain: explanation))
                if request % 1_000 == 999 { while components.exposures.pending > 0 { await components.exposures.flush() } }
            }
            let rank = (clock.now - start).seconds
            let encodeStart = clock.now
            for response in responses { _ = response.jsonBytes() }
            return (responses, rank, (clock.now - encodeStart).seconds)
        }
        let (responses, rank, encode) = try await timed(nil)
        let explanation: ExplanationSource? = explain.map { $0 == "bundle" ? .bundle : .index($0) }
        var explained: (responses: [RecommendationResponse], rank: Double, encode: Double)?
        if let explanation { explained = try await timed(explanation) }
        let histories = (0..<min(users.count, requests)).map { bundle.history(ofUser: $0).count }.sorted()
        let answeredBy = Dictionary(grouping: responses, by: \.index).mapValues { Double($0.count) / Double(requests) }
        let mostly: String = answeredBy.max { $0.value < $1.value }?.key ?? ""
        let scanMicros: Double? = scanTime(users: users, bundle: bundle).map { $0 * 1e6 }
        let perRequest = 1e6 / Double(requests)
        let explainedRank: Double? = explained.map { $0.rank * perRequest }
        let explainedEncode: Double? = explained.map { $0.encode * perRequest }
        let measuredRecall = try recall(users: Array(users.prefix(recallUsers)), served: components.recommender, bundle: bundle)
        let result = Result(requests: requests, rankMicros: rank * perRequest, encodeMicros: encode * perRequest, scanMicros: scanMicros,
                            index: mostly, answeredBy: answeredBy, ef: ef, recall: measuredRecall,
                            explainedRankMicros: explainedRank, explainedEncodeMicros: explainedEncode,
                            medianHistory: explained == nil ? nil : histories[histories.count / 2])
        if output.json { return try printJSON(result) }
        print(String(format: "%d requests: rank + exposure %.1f µs, JSON encoding %.1f µs per request", requests,
                     result.rankMicros, result.encodeMicros))
        if let scanMicros {
            print(String(format: "of which the exact scan alone (Serve's exclusions, %@ screening): %.1f µs per request",
                         VectorMath.int8ScreeningName, scanMicros))
        }
        if let explainedRank = result.explainedRankMicros, let explainedEncode = result.explainedEncodeMicros {
            let index = explained?.responses.first?.explanation?.index ?? "?"
            print(String(format: "explained with %@: rank + because %.1f µs, JSON %.1f µs per request (+%.1f µs; median history %d items, %d items per list)",
                          index, explainedRank, explainedEncode, explainedRank + explainedEncode - result.rankMicros - result.encodeMicros,
                          result.medianHistory ?? 0, n))
        }
        let shares = answeredBy.sorted { $0.value > $1.value }.map { share -> String in
            String(format: "%@ %.2f%%", share.key, 100 * share.value)
        }
        print("answered by: \(shares.joined(separator: ", ")) (HNSW beam \(ef))")
        if let recall = result.recall { print(String(format: "recall@%d against a brute-force scan over %d users: %.4f", n, min(recallUsers, users.count), recall)) }
    }

    /// Seconds per request of the length-ordered scan Serve answers from, each user's training
    /// history and the unavailable items excluded (built outside the timing).
    private func scanTime(users: [String], bundle: ModelBundle) -> Double? {
        guard bundle.dimension > 0, !users.isEmpty else { return nil }
        let scan = NormOrderedScan(vectors: bundle.itemFactors, dimension: bundle.dimension, owner: bundle)
        let exclusions = (0..<min(users.count, requests)).map { Self.servedExclusions(ofUser: $0, in: bundle) }
        let clock = ContinuousClock()
        var found = 0
        let start = clock.now
        for request in 0..<requests {
            let user = request % exclusions.count
            found += scan.search(bundle.userFactors.baseAddress! + user * bundle.dimension, k: n, excluding: exclusions[user])?.count ?? 0
        }
        let elapsed = (clock.now - start).seconds
        precondition(found > 0 || bundle.itemCount == 0, "the scan answered nothing")
        return elapsed / Double(requests)
    }

    /// What Serve leaves out of a known user's list: their training history and unavailable items.
    private static func servedExclusions(ofUser user: Int, in bundle: ModelBundle) -> ExclusionSet {
        var excluded = ExclusionSet(capacity: bundle.itemCount)
        for item in 0..<bundle.itemCount where !bundle.isAvailable(item: item) { excluded.insert(item) }
        for item in bundle.history(ofUser: user) { excluded.insert(Int(item)) }
        return excluded
    }

    /// Against a brute-force scan of every item row, with the same exclusions Serve applies
    /// (the user's training history and unavailable items).
    private func recall(users: [String], served: Recommender, bundle: ModelBundle) throws -> Double? {
        guard !users.isEmpty, bundle.dimension > 0 else { return nil }
        let bruteForce = ExactIndex(vectors: bundle.itemFactors, dimension: bundle.dimension, metric: .innerProduct, owner: bundle,
                                    halfPrecision: false)
        var found = 0, wanted = 0
        for user in users {
            guard let userIndex = bundle.userIndex(of: user) else { continue }
            let exclusions = Self.servedExclusions(ofUser: userIndex, in: bundle)
            let query = bundle.userFactors.baseAddress! + userIndex * bundle.dimension
            let truth = Set(bruteForce.search(query, k: n, excluding: exclusions).map { bundle.itemIDs[$0.id] })
            let answer = try served.recommend(user: user, n: n, exclude: [], context: nil).itemIDs
            found += answer.filter(truth.contains).count
            wanted += truth.count
        }
        return wanted == 0 ? nil : Double(found) / Double(wanted)
    }
}
