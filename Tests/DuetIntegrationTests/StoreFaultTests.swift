import DuetCore
import DuetLab
import DuetServe
import DuetStore
import DuetLabTestSupport
import DuetTestSupport
import Foundation
import GRDB
import Hummingbird
import DuetHTTPTestSupport
import Logging
import NIOCore
import Testing

/// Store trouble degrades Serve, never corrupts it: while another writer holds the event log's write
/// lock (as a Lab import's single transaction does), ingest answers 503 with Retry-After within its
/// deadline and stores nothing, recommendations keep coming from memory, and ingest resumes after.
@Suite(.serialized) struct StoreFaultTests {
    static func batch(_ user: String, _ count: Int) -> ByteBuffer {
        let events = (0..<count).map { "{\"user\":\"\(user)\",\"item\":\"t\($0)\",\"timestamp\":\(1_700_000_000 + $0)}" }
        return ByteBuffer(string: "[" + events.joined(separator: ",") + "]")
    }

    @Test func ingestAnswers503WhileAnotherWriterHoldsTheLog() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let user = try fixture.knownUser()
            let path = fixture.lab.lab.home.eventLogPath.path
            let before = try await fixture.eventLog.count(matching: EventFilter())
            let locked = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
            // Its own thread, as the Lab's importer runs: the holder blocks while it writes.
            let holder = Thread {
                do {
                    let queue = try DatabaseQueue(path: path)
                    try queue.inDatabase { db in
                        try db.execute(sql: "BEGIN IMMEDIATE")
                        locked.signal()
                        release.wait()
                        try db.execute(sql: "ROLLBACK")
                    }
                } catch {
                    Issue.record("lock holder: \(error)")
                    locked.signal()
                }
            }
            holder.start()
            locked.wait()
            let clock = ContinuousClock()
            try await fixture.app.test(.inProcess) { client in
                let started = clock.now
                try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                         body: Self.batch("locked-out", 5)) { response in
                    #expect(response.status == .serviceUnavailable)
                    #expect(response.headers[.retryAfter] == "2")
                    #expect(String(buffer: response.body).contains("nothing was stored"))
                }
                // Bounded by the ingest deadline (3 s); the generous bound allows for a busy parallel run.
                // The store count below is what catches a write that waited out the lock and committed late.
                #expect(clock.now - started < .seconds(30))
                try await client.execute(uri: "/v1/users/\(user)/recommendations?n=3", method: .get) { #expect($0.status == .ok) }
                try await client.execute(uri: "/v1/items/t1/similar?n=3", method: .get) { #expect($0.status == .ok) }
                release.signal()
                try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                         body: Self.batch("after", 3)) { #expect($0.status == .accepted) }
            }
            #expect(try await fixture.eventLog.count(matching: EventFilter()) == before + 3)
        }
    }

    /// Past `maxIngestInFlight`, ingest sheds load with 503 at once instead of buffering bodies.
    @Test func ingestShedsLoadPastItsInFlightBound() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder, maxIngestInFlight: 1)
            let path = fixture.lab.lab.home.eventLogPath.path
            let locked = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
            let holder = Thread {
                do {
                    try DatabaseQueue(path: path).inDatabase { db in
                        try db.execute(sql: "BEGIN IMMEDIATE")
                        locked.signal()
                        release.wait()
                        try db.execute(sql: "ROLLBACK")
                    }
                } catch { locked.signal() }
            }
            holder.start()
            locked.wait()
            try await fixture.app.test(.inProcess) { client in
                // One batch waits on the lock; the next is shed at once, with Retry-After 1.
                async let first = client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                                 body: Self.batch("first", 1))
                // Until the first batch is in flight (it then waits on the lock for up to 1.5 s).
                for _ in 0..<2_000 where fixture.components.ingestInFlight.current == 0 { try await Task.sleep(for: .milliseconds(1)) }
                #expect(fixture.components.ingestInFlight.current == 1)
                let second = try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                                      body: Self.batch("second", 1))
                #expect(second.status == .serviceUnavailable && second.headers[.retryAfter] == "1")
                #expect(String(buffer: second.body).contains("already being stored"))
                release.signal()
                let firstStatus = try await first.status
                #expect(firstStatus == .accepted || firstStatus == .serviceUnavailable)
            }
        }
    }
}

/// Serve answers from a private, verified copy of each bundle: truncating or overwriting the files
/// under a running server neither crashes it (a memory map would fault with SIGBUS) nor changes a
/// single answer.
@Suite struct ServedBundleTests {
    @Test func truncatingOrOverwritingAServedBundleChangesNothing() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let user = try fixture.knownUser()
            let uris = ["/v1/users/\(user)/recommendations?n=10", "/v1/users/nobody/recommendations?n=5",
                        "/v1/items/t1/similar?n=5", "/v1/items/t1/similar?n=5&index=exact"]
            @Sendable func answers(_ client: HTTPTestClient) async throws -> [String] {
                var bodies: [String] = []
                for uri in uris {
                    let response = try await client.execute(uri: uri, method: .get)
                    #expect(response.status == .ok, "\(uri)")
                    let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any] ?? [:]
                    bodies.append("\((body["items"] as? [[String: Any]] ?? []).map { "\($0["id"] ?? "")=\($0["score"] ?? "")" })")
                }
                return bodies
            }
            try await fixture.app.test(.inProcess) { client in
                let before = try await answers(client)
                #expect(before.allSatisfy { $0.count > 4 })
                let bundle = try fixture.lab.lab.bundleFolder(fixture.lab.first)
                let files = try FileManager.default.contentsOfDirectory(atPath: bundle.path).filter { $0 != "manifest.json" }
                for (position, name) in files.sorted().enumerated() {
                    let handle = try FileHandle(forUpdating: bundle.appendingPathComponent(name))
                    if position % 2 == 0 {
                        try handle.truncate(atOffset: 0)
                    } else {
                        let size = try handle.seekToEnd()
                        try handle.seek(toOffset: 0)
                        try handle.write(contentsOf: Data(repeating: 0x7F, count: Int(size)))
                    }
                    try handle.close()
                }
                #expect(try await answers(client) == before)
            }
        }
    }
}

/// What a user just played is filtered on every replica and survives a restart: each replica
/// follows the event log's tail, and a starting one reads the recent window first.
@Suite struct SharedConsumptionTests {
    @Test func anEventIngestedOnOneReplicaFiltersAnotherAndSurvivesARestart() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let home = fixture.lab.lab.home
            func replica() async throws -> (Application<RouterResponder<ServeRequestContext>>, ServeComponents) {
                let log = try SQLiteEventLog(path: home.eventLogPath.path)
                let (router, components) = try await buildServe(configuration: ServeSettings(home: home),
                                                                source: try SQLiteServingSource(path: home.registryPath.path),
                                                                eventSink: log, eventTail: log, prometheus: nil, logger: Logger(label: "replica"))
                return (Application(router: router), components)
            }
            let (other, otherComponents) = try await replica()
            let user = try fixture.knownUser()
            func top(_ app: Application<RouterResponder<ServeRequestContext>>) async throws -> [String] {
                try await app.test(.inProcess) { client in
                    let response = try await client.execute(uri: "/v1/users/\(user)/recommendations?n=5", method: .get)
                    return try decode(Recommendations.self, response).items.map(\.id)
                }
            }
            let played = try #require(try await top(other).first)
            // Ingested on the first replica; the second learns it from the log's tail.
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                         body: ByteBuffer(string: "[{\"user\":\"\(user)\",\"item\":\"\(played)\",\"timestamp\":\"\(TimestampParser.iso8601String(Date().epochMillis))\"}]")) {
                    #expect($0.status == .accepted)
                }
            }
            #expect(try await top(other).first == played, "not yet read: the tail is polled")
            #expect(try await #require(otherComponents.consumption).catchUp() >= 1)
            #expect(!(try await top(other)).contains(played))
            // A replica started afterwards reads the recent window before its first request.
            let (restarted, _) = try await replica()
            #expect(!(try await top(restarted)).contains(played))
            // An event older than the window is history the bundle already had, not a fresh play.
            var settings = ServeSettings(home: home)
            settings.recentWindow = .seconds(0)
            let log = try SQLiteEventLog(path: home.eventLogPath.path)
            let (router, _) = try await buildServe(configuration: settings, source: try SQLiteServingSource(path: home.registryPath.path),
                                                   eventSink: log, eventTail: log, prometheus: nil, logger: Logger(label: "narrow"))
            #expect(try await top(Application(router: router)).first == played)
        }
    }
}

/// A store that never answers cannot hold an ingest response past its deadline.
@Suite struct IngestDeadlineTests {
    struct NothingToServe: ServingSource {
        func servingVersion() async throws -> Int { 0 }
        func servingConfiguration() async throws -> ServingConfiguration {
            ServingConfiguration(version: 0, productionGeneration: 0, production: nil, experiments: [])
        }
    }

    /// An event store that hangs, as an unreachable PostgreSQL can, deaf to cancellation like a
    /// blocked socket read.
    struct HangingSink: EventSink {
        func append(events: [FeedbackEvent]) async throws -> Int64? {
            await withCheckedContinuation { (waiting: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + 600) { waiting.resume() }
            }
            return nil
        }
        func append(exposures: [Exposure]) async throws -> Int64? { nil }
        func replay(exposures: [Exposure]) async throws -> Int { 0 }
        func append(shadows: [ShadowExposure]) async throws {}
        func append(events: [FeedbackEvent], batchKey: String) async throws -> BatchReceipt {
            BatchReceipt(lastSequence: try await append(events: events), accepted: events.count, repeated: false)
        }
    }

    @Test func aHangingStoreGets503WithinTheDeadline() async throws {
        try await withScratchFolder { folder in
            var settings = ServeSettings(home: DuetHome(root: folder))
            settings.ingestTimeout = .milliseconds(300)
            let (router, _) = try await buildServe(configuration: settings, source: NothingToServe(), eventSink: HangingSink(),
                                                   prometheus: nil, logger: Logger(label: "deadline"))
            let clock = ContinuousClock()
            try await Application(router: router).test(.inProcess) { client in
                let started = clock.now
                let response = try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                                        body: StoreFaultTests.batch("u", 1))
                #expect(response.status == .serviceUnavailable && response.headers[.retryAfter] == "2")
                #expect(String(buffer: response.body).contains("no answer within"))
                // Far below the store's 600 s: a busy parallel test run has delayed the 0.3 s timer to ~19 s.
                #expect(clock.now - started < .seconds(120), "the response waited for the store")
            }
        }
    }
}
