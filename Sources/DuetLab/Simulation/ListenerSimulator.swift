import DuetCore
public import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Simulated listeners from a synthetic world, talking to `duet serve` over HTTP as any client
/// would: ask for recommendations, then play, skip or save each item as the world's ground truth
/// says, and post that feedback with the list's requestId. The Lab never calls Serve's code.
public struct ListenerSimulator: Sendable {
    public struct Configuration: Sendable {
        public var baseURL: URL
        public var users = 1_000
        public var requestsPerUser = 3
        public var listSize = 10
        public var concurrency = 8
        public var seed: UInt64 = 7
        public var apiKey: String?
        /// Only users with index in this range are simulated (e.g. to leave some unexposed).
        public var firstUser = 0

        public init(baseURL: URL) { self.baseURL = baseURL }
    }

    public struct Report: Codable, Sendable {
        public var requests = 0
        public var non2xx = 0
        public var transportErrors = 0
        public var eventsPosted = 0
        public var eventsAcknowledged = 0
        public var plays = 0
        public var skips = 0
        public var saves = 0
        public var fallbackResponses = 0
        public var seconds = 0.0
        public var latencyP50Millis = 0.0
        public var latencyP99Millis = 0.0
        public var bundlesSeen: [String: Int] = [:]

        mutating func merge(_ other: Report) {
            requests += other.requests
            non2xx += other.non2xx
            transportErrors += other.transportErrors
            eventsPosted += other.eventsPosted
            eventsAcknowledged += other.eventsAcknowledged
            plays += other.plays
            skips += other.skips
            saves += other.saves
            fallbackResponses += other.fallbackResponses
            for (bundle, count) in other.bundlesSeen { bundlesSeen[bundle, default: 0] += count }
        }
    }

    struct ServedList: Decodable {
        var requestId: String
        var bundle: String
        var fallback: String?
        var items: [Item]
        struct Item: Decodable { var id: String }
    }

    public let world: World
    public let configuration: Configuration
    let session: URLSession

    public init(world: World, configuration: Configuration) {
        self.world = world
        self.configuration = configuration
        let settings = URLSessionConfiguration.ephemeral
        settings.httpMaximumConnectionsPerHost = max(configuration.concurrency, 1)
        settings.timeoutIntervalForRequest = 30
        session = URLSession(configuration: settings)
    }

    public func run(progress: (@Sendable (Int) -> Void)? = nil) async throws -> Report {
        let started = ContinuousClock.now
        let workers = max(1, configuration.concurrency)
        let users = min(configuration.users, world.spec.users - configuration.firstUser)
        guard users > 0 else { throw DuetError.invalidValue(field: "users", reason: "the world has no users from index \(configuration.firstUser)") }
        var total = Report()
        var latencies: [Double] = []
        try await withThrowingTaskGroup(of: (Report, [Double]).self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var report = Report()
                    var times: [Double] = []
                    for offset in stride(from: worker, to: users, by: workers) {
                        try await simulate(user: configuration.firstUser + offset, report: &report, latencies: &times)
                        if worker == 0 { progress?(offset) }
                    }
                    return (report, times)
                }
            }
            for try await (report, times) in group {
                total.merge(report)
                latencies += times
            }
        }
        latencies.sort()
        if !latencies.isEmpty {
            total.latencyP50Millis = latencies[latencies.count / 2]
            total.latencyP99Millis = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
        }
        total.seconds = Double((ContinuousClock.now - started).components.seconds) + Double((ContinuousClock.now - started).components.attoseconds) / 1e18
        return total
    }

    func simulate(user: Int, report: inout Report, latencies: inout [Double]) async throws {
        var rng = SplitMix64(seed: configuration.seed, 41, UInt64(user))
        let taste = world.tasteVector(user: user)
        let userID = world.userID(user)
        var events: [FeedbackEvent] = []
        for _ in 0..<configuration.requestsPerUser {
            var components = URLComponents(url: configuration.baseURL.appendingPathComponent("v1/users/\(userID)/recommendations"),
                                           resolvingAgainstBaseURL: false)!
            components.queryItems = [URLQueryItem(name: "n", value: "\(configuration.listSize)"), URLQueryItem(name: "context", value: "simulation")]
            var request = URLRequest(url: components.url!)
            if let key = configuration.apiKey { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
            let begin = ContinuousClock.now
            report.requests += 1
            let (data, response): (Data, URLResponse)
            do { (data, response) = try await session.data(for: request) } catch {
                report.transportErrors += 1
                continue
            }
            let elapsed = ContinuousClock.now - begin
            latencies.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
            guard let http = response as? HTTPURLResponse, (200..<300).contains(http.statusCode),
                  let list = try? JSONDecoder().decode(ServedList.self, from: data) else {
                report.non2xx += 1
                continue
            }
            report.bundlesSeen[list.bundle, default: 0] += 1
            if list.fallback != nil { report.fallbackResponses += 1 }
            let now = Date().epochMillis
            for (position, item) in list.items.enumerated() {
                // Attention fades down the list; an unseen item gets no feedback at all.
                guard rng.uniform() < Foundation.pow(0.85, Double(position)) else { continue }
                let affinity = world.trackIndex(of: item.id).map { world.affinity(taste: taste, track: $0) } ?? 0
                if rng.uniform() < affinity {
                    var plays = 1
                    while plays < 20, rng.uniform() < 0.3 { plays += 1 }
                    events.append(FeedbackEvent(user: userID, item: item.id, kind: .play, weight: Float(plays), timestamp: now, requestID: list.requestId))
                    report.plays += 1
                    if rng.uniform() < 0.15 * affinity {
                        events.append(FeedbackEvent(user: userID, item: item.id, kind: .save, weight: 1, timestamp: now, requestID: list.requestId))
                        report.saves += 1
                    }
                } else {
                    events.append(FeedbackEvent(user: userID, item: item.id, kind: .skip, weight: 1, timestamp: now, requestID: list.requestId))
                    report.skips += 1
                }
            }
            if events.count >= 100 { try await post(&events, report: &report) }
        }
        if !events.isEmpty { try await post(&events, report: &report) }
    }

    func post(_ events: inout [FeedbackEvent], report: inout Report) async throws {
        var request = URLRequest(url: configuration.baseURL.appendingPathComponent("v1/events"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let key = configuration.apiKey { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        request.httpBody = try JSONEncoder().encode(events)
        report.eventsPosted += events.count
        report.requests += 1
        do {
            let (_, response) = try await session.data(for: request)
            if let http = response as? HTTPURLResponse, http.statusCode == 202 {
                report.eventsAcknowledged += events.count
            } else {
                report.non2xx += 1
            }
        } catch {
            report.transportErrors += 1
        }
        events.removeAll(keepingCapacity: true)
    }
}
