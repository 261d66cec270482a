import ArgumentParser
import DuetCore
import DuetServe
import DuetStore
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
    @OptionGroup var output: OutputOptions

    struct Result: Codable {
        var requests: Int
        var rankMicros: Double
        var encodeMicros: Double
        var index: String
    }

    func run() async throws {
        let duetHome = home.resolved
        let registry = try SQLiteRegistry(path: duetHome.registryPath.path, readOnly: true)
        let scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("duet-bench-\(UUID().uuidString.prefix(8)).sqlite")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let log = try SQLiteEventLog(path: scratch.path)
        let (_, components) = try await buildServe(configuration: ServeConfiguration(home: duetHome), registry: registry, eventLog: log,
                                                   prometheus: nil, logger: Logger(label: "bench"))
        guard let bundle = components.store.current.production?.bundle else { throw DuetError.refused("nothing is in production") }
        let users = bundle.userIDs
        let clock = ContinuousClock()
        var responses: [RecommendationResponse] = []
        responses.reserveCapacity(requests)
        let start = clock.now
        for request in 0..<requests {
            responses.append(try components.recommender.recommend(user: users[request % users.count], n: n, exclude: [], context: nil))
            if request % 1_000 == 999 { while components.exposures.pending > 0 { await components.exposures.flush() } }
        }
        let rank = (clock.now - start).seconds
        let encodeStart = clock.now
        for response in responses { _ = response.jsonBytes() }
        let encode = (clock.now - encodeStart).seconds
        let result = Result(requests: requests, rankMicros: rank / Double(requests) * 1e6, encodeMicros: encode / Double(requests) * 1e6,
                            index: responses.first?.index ?? "")
        if output.json { return try printJSON(result) }
        print(String(format: "%d requests via %@: rank + exposure %.1f µs, JSON encoding %.1f µs per request", requests, result.index, result.rankMicros, result.encodeMicros))
    }
}
