import DuetCore
import DuetLab
import DuetServe
import DuetKernels
import DuetSimilarity
import DuetStore
import DuetLabTestSupport
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import Logging
import Prometheus
import Testing

/// A Lab home with two trained models, and Serve built over it with a read-only registry.
struct ServeFixture: Sendable {
    let lab: LabFixture
    let app: Application<RouterResponder<ServeRequestContext>>
    let components: ServeComponents
    let eventLog: SQLiteEventLog

    static func make(in folder: URL, promote: Bool = true, access: AccessKeys = AccessKeys(keys: []), maxBodyBytes: Int = 4 << 20,
                     maxIngestInFlight: Int = 32, accessLogSample: Double = 0, logger: Logger = Logger(label: "test")) async throws -> ServeFixture {
        let lab = try await LabFixture.make(in: folder)
        if promote {
            try await lab.lab.registry.promote(lab.first, actor: "test", reason: "setup", evidence: .override(reason: "test setup"),
                                               expectedGeneration: 0)
        }
        var configuration = ServeSettings(home: lab.lab.home)
        configuration.access = access
        configuration.maxBodyBytes = maxBodyBytes
        configuration.maxIngestInFlight = maxIngestInFlight
        configuration.accessLogSample = accessLogSample
        let source = try SQLiteServingSource(path: lab.lab.home.registryPath.path)
        let eventLog = try SQLiteEventLog(path: lab.lab.home.eventLogPath.path, busyTimeout: configuration.ingestTimeout / 2)
        let (router, components) = try await buildServe(configuration: configuration, source: source, eventSink: eventLog,
                                                        prometheus: PrometheusCollectorRegistry(), logger: logger)
        // The application's logger is the one each request's context carries (access lines, request ids).
        return ServeFixture(lab: lab, app: Application(router: router, logger: logger), components: components, eventLog: eventLog)
    }

    func knownUser() throws -> String {
        try #require(components.store.current.production).bundle.userIDs[3]
    }
}

func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView))
}

struct ErrorReply: Decodable {
    var error: String
    var status: Int
}

struct Recommendations: Decodable {
    var bundle: String
    var generation: Int
    var items: [Item]
    var fallback: String?
    var index: String
    var requestId: String
    struct Item: Decodable { var id: String; var score: Float; var title: String? }
}

@Suite(.serialized) struct ServeRouteTests {
    @Test(arguments: [HTTPTestMode.inProcess, .live])
    func everyRouteAnswers(setup: HTTPTestMode) async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let user = try fixture.knownUser()
            try await fixture.app.test(setup) { client in
                try await client.execute(uri: "/livez", method: .get) { #expect($0.status == .ok) }
                try await client.execute(uri: "/readyz", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains(fixture.lab.first))
                }
                try await client.execute(uri: "/v1/users/\(user)/recommendations?n=5", method: .get) { response in
                    #expect(response.status == .ok)
                    let body = try decode(Recommendations.self, response)
                    #expect(body.items.count == 5)
                    #expect(body.bundle == fixture.lab.first)
                    #expect(body.fallback == nil)
                    #expect(body.generation == 1)
                    #expect(body.items.allSatisfy { $0.title != nil })
                    // Consumed items are never recommended.
                    let bundle = try #require(fixture.components.store.current.production).bundle
                    let index = try #require(bundle.userIndex(of: user))
                    let consumed = Set(bundle.history(ofUser: index).map { bundle.itemIDs[Int($0)] })
                    #expect(body.items.allSatisfy { !consumed.contains($0.id) })
                }
                try await client.execute(uri: "/v1/items/t1/similar?n=4", method: .get) { response in
                    #expect(response.status == .ok)
                    let body = String(buffer: response.body)
                    #expect(body.contains("\"index\":\"items/als-8\""))
                    #expect(!body.contains("\"id\":\"t1\""), "an item is not similar to itself")
                }
                try await client.execute(uri: "/v1/events", method: .post,
                                         body: ByteBuffer(string: #"[{"user":"u1","item":"t2","kind":"play","timestamp":1767225600}]"#)) { response in
                    #expect(response.status == .accepted)
                }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("duet_events_ingested_total 1"))
                    #expect(text.contains("duet_bundle_generation 1"))
                    // Every known user of this small bundle fits in the default list memory.
                    let users = try #require(fixture.components.store.current.production).bundle.userCount
                    #expect(users > 0 && text.contains("duet_production_users \(users)"))
                    #expect(text.contains("duet_precomputed_users \(users)"))
                    #expect(text.contains(#"duet_recommendations_total{index="exact"} 1"#))
                    // Per-route traffic and latency, from Serve's own middleware.
                    let lines = text.split(separator: "\n")
                    let recommendations = lines.filter { $0.contains("recommendations") && $0.contains(#"http_response_status_code="200""#) }
                    #expect(recommendations.contains { $0.hasPrefix("http_server_requests_total{") && $0.hasSuffix(" 1") })
                    #expect(recommendations.contains { $0.hasPrefix("http_server_request_duration_seconds_count{") && $0.hasSuffix(" 1") })
                }
                try await client.execute(uri: "/openapi.json", method: .get) { response in
                    let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                    let paths = try #require(document["paths"] as? [String: Any])
                    #expect(paths.count == ServeRoutes.all.count, "no route is documented that the server does not have")
                    var operationIDs = Set<String>()
                    for (path, methods) in ServeRoutes.all {
                        let operations = try #require(paths[path] as? [String: Any], "\(path) is documented")
                        #expect(Set(operations.keys) == Set(methods.map { $0.lowercased() }), "\(path) documents exactly its methods")
                        for case let operation as [String: Any] in operations.values {
                            let id = try #require(operation["operationId"] as? String, "\(path) has an operationId")
                            #expect(operationIDs.insert(id).inserted, "operationId \(id) is unique")
                        }
                    }
                    let unavailable = try #require((document["components"] as? [String: Any])?["responses"] as? [String: Any])["Unavailable"] as? [String: Any]
                    #expect(((unavailable?["headers"] as? [String: Any])?["Retry-After"] as? [String: Any])?["required"] as? Bool == true)
                }
                // A known path with a method it does not have is 405 naming the one it does, not 404.
                try await client.execute(uri: "/livez", method: .delete) { response in
                    #expect(response.status == .methodNotAllowed)
                    #expect(response.headers[.allow] == "GET")
                }
                try await client.execute(uri: "/v1/users/u1/recommendations", method: .post) { response in
                    #expect(response.status == .methodNotAllowed)
                }
                try await client.execute(uri: "/v1/nowhere", method: .get) { #expect($0.status == .notFound) }
                // A batch retried under its Idempotency-Key is stored once; the retry gets the first receipt.
                let batch = ByteBuffer(string: #"[{"user":"u1","item":"t3","timestamp":1767225600}]"#)
                var receipts: [String] = []
                for _ in 0..<2 {
                    try await client.execute(uri: "/v1/events", method: .post, headers: [.init("Idempotency-Key")!: "batch-7"],
                                             body: batch) { response in
                        #expect(response.status == .accepted)
                        receipts.append(String(buffer: response.body))
                    }
                }
                #expect(receipts.first?.contains(#""repeated":false"#) == true && receipts.last?.contains(#""repeated":true"#) == true, "\(receipts)")
                try await client.execute(uri: "/v1/events", method: .post, headers: [.init("Idempotency-Key")!: String(repeating: "k", count: 257)],
                                         body: batch) { #expect($0.status == .badRequest) }
            }
            #expect(try await fixture.eventLog.count(matching: EventFilter()) == 2, "one plain event, one keyed batch stored once")
        }
    }

    @Test func fallbacksAreNamed() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: "/v1/users/stranger/recommendations?n=3", method: .get) { response in
                    let body = try decode(Recommendations.self, response)
                    #expect(body.fallback == "unknown-user")
                    #expect(body.index == "popularity")
                    #expect(body.items.count == 3)
                }
            }
        }
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder, promote: false)
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
                try await client.execute(uri: "/v1/users/u1/recommendations", method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                    let reply = try decode(ErrorReply.self, response)
                    #expect(reply.error.contains("no production bundle"))
                }
            }
        }
    }

    @Test(arguments: [
        ("/v1/users/u1/recommendations?n=0", 400, "n must be"),
        ("/v1/users/u1/recommendations?n=1001", 400, "n must be"),
        ("/v1/users/u1/recommendations?n=ten", 400, "n must be"),
        ("/v1/users/u%07x/recommendations", 400, "control character"),
        ("/v1/users/u1/recommendations?exclude=a,%01", 400, "control character"),
        // Empty entries count, as /openapi.json's pattern counts them.
        ("/v1/users/u1/recommendations?exclude=" + String(repeating: ",", count: ServeSettings.maxExcludedItems), 400, "more than 100 ids"),
        ("/v1/users/u1/recommendations?exclude=" + String(repeating: "x", count: 257), 400, "longer than 256 characters"),
        ("/v1/items/nope/similar", 404, "not in the production bundle"),
        ("/v1/items/t1/similar?index=missing", 404, "no index named 'missing'"),
        ("/v2/anything", 404, "no route"),
    ])
    func badQueriesGetJSONErrors(uri: String, status: Int, message: String) async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(Int(response.status.code) == status)
                    let body = try decode(ErrorReply.self, response)
                    #expect(body.error.contains(message), "\(body.error)")
                }
            }
        }
    }

    @Test func badEventBatchesGetJSONErrorsAndStoreNothing() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder, access: AccessKeys(keys: [AccessKey(name: "collector", secret: "sesame", roles: [.ingest])]),
                                                      maxBodyBytes: 2_048)
            let good = #"[{"user":"u1","item":"t2","timestamp":1}]"#
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: "/v1/events", method: .post, body: ByteBuffer(string: good)) { response in
                    #expect(response.status == .unauthorized)
                }
                var headers = HTTPFields()
                headers[.authorization] = "Bearer sesame"
                let cases: [(String, Int, String)] = [
                    ("{not json", 400, "malformed events"),
                    (#"[{"user":"u1","item":"t2"}]"#, 400, "timestamp"),
                    (#"[{"user":"u1","item":"t2","timestamp":1},{"user":"","item":"t","timestamp":1}]"#, 400, "user"),
                    ("[]", 400, "no events"),
                    (String(repeating: " ", count: 4_000) + good, 413, "larger than 2048 bytes"),
                ]
                for (body, status, message) in cases {
                    try await client.execute(uri: "/v1/events", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                        #expect(Int(response.status.code) == status, "\(body.prefix(40))")
                        #expect(String(buffer: response.body).contains(message))
                    }
                }
                try await client.execute(uri: "/v1/events", method: .post, headers: headers, body: ByteBuffer(string: good)) { response in
                    #expect(response.status == .accepted)
                }
            }
            #expect(try await fixture.eventLog.count(matching: EventFilter()) == 1)
        }
    }

    @Test func exposuresReachTheEventLog() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let user = try fixture.knownUser()
            let requestIDs = try await fixture.app.test(.inProcess) { client in
                var ids: [String] = []
                for _ in 0..<7 {
                    let response = try await client.execute(uri: "/v1/users/\(user)/recommendations?n=4&context=home", method: .get)
                    ids.append(try decode(Recommendations.self, response).requestId)
                }
                return ids
            }
            while fixture.components.exposures.pending > 0 { await fixture.components.exposures.flush() }
            let stored = try await fixture.eventLog.exposures(after: 0, matching: EventFilter(), limit: 100).map(\.exposure)
            #expect(stored.map(\.requestID) == requestIDs)
            #expect(stored.allSatisfy { $0.items.count == 4 && $0.context == "home" && $0.bundleID == fixture.lab.first })
        }
    }

    /// The response JSON is spliced from per-item fragments rendered at load; it must say exactly
    /// what the catalogue and the ranking say.
    @Test func responseJSONMatchesTheRankedItems() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let bundle = try #require(fixture.components.store.current.production).bundle
            for user in [bundle.userIDs[0], bundle.userIDs[5], "nobody-knows-me"] {
                let response = try fixture.components.recommender.recommend(user: user, n: 7, exclude: [], context: nil)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(response.jsonBytes())) as? [String: Any])
                let items = try #require(object["items"] as? [[String: Any]])
                let expected = response.items
                #expect(items.count == expected.count && !expected.isEmpty)
                for (json, item) in zip(items, expected) {
                    #expect(json["id"] as? String == item.id)
                    #expect((json["score"] as? NSNumber)?.floatValue == item.score)
                    #expect(json["title"] as? String == item.title)
                    #expect(json["artist"] as? String == item.artist)
                    #expect(item.title == bundle.catalog[item.id]?.title)
                }
                #expect(object["bundle"] as? String == response.bundle)
            }
        }
    }

    /// Served lists are the model's exact top n: the same as scoring every item, minus the user's
    /// history and what the request excludes.
    @Test func recommendationsAreTheExactTopN() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let bundle = try #require(fixture.components.store.current.production).bundle
            let bruteForce = ExactIndex(vectors: bundle.itemFactors, dimension: bundle.dimension, metric: .innerProduct, owner: bundle,
                                        halfPrecision: false)
            var checked = 0
            for userIndex in stride(from: 0, to: bundle.userCount, by: max(1, bundle.userCount / 25)) {
                let user = bundle.userIDs[userIndex]
                let history = bundle.history(ofUser: userIndex)
                guard !history.isEmpty else { continue }
                var exclusions = ExclusionSet(capacity: bundle.itemCount)
                for item in history { exclusions.insert(Int(item)) }
                let query = bundle.userFactors.baseAddress! + userIndex * bundle.dimension
                let unfiltered = bruteForce.search(query, k: 1, excluding: exclusions)
                let excludedByRequest = unfiltered.map { bundle.itemIDs[$0.id] }
                for neighbour in unfiltered { exclusions.insert(neighbour.id) }
                let expected = bruteForce.search(query, k: 10, excluding: exclusions)
                let response = try fixture.components.recommender.recommend(user: user, n: 10, exclude: excludedByRequest, context: nil)
                #expect(response.index == "exact")
                #expect(response.itemIDs == expected.map { bundle.itemIDs[$0.id] })
                #expect(response.items.map(\.score) == expected.map(\.score))
                checked += 1
            }
            #expect(checked >= 10)
        }
    }

    /// With no scan budget, lists come from the bundle's inner-product HNSW index: still filtered,
    /// still the model's raw scores, and close to the exact lists.
    @Test func listsTheScanCannotProveGoThroughHNSW() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            var configuration = ServeSettings(home: fixture.lab.lab.home)
            configuration.annThreshold = 0
            let source = try SQLiteServingSource(path: fixture.lab.lab.home.registryPath.path)
            let (_, approximate) = try await buildServe(configuration: configuration, source: source, eventSink: fixture.eventLog,
                                                        prometheus: nil, logger: Logger(label: "test"))
            let bundle = try #require(approximate.store.current.production).bundle
            var found = 0, wanted = 0
            for userIndex in stride(from: 0, to: bundle.userCount, by: max(1, bundle.userCount / 25)) {
                let user = bundle.userIDs[userIndex]
                guard !bundle.history(ofUser: userIndex).isEmpty else { continue }
                let exact = try fixture.components.recommender.recommend(user: user, n: 10, exclude: [], context: nil)
                let answer = try approximate.recommender.recommend(user: user, n: 10, exclude: [], context: nil)
                #expect(answer.index.hasSuffix("-ip"))
                let consumed = Set(bundle.history(ofUser: userIndex).map { bundle.itemIDs[Int($0)] })
                #expect(answer.itemIDs.allSatisfy { !consumed.contains($0) })
                let query = bundle.userFactors.baseAddress! + userIndex * bundle.dimension
                for item in answer.items {
                    let row = try #require(bundle.itemIndex(of: item.id))
                    #expect(item.score == VectorMath.dot(query, bundle.itemFactors.baseAddress! + row * bundle.dimension, bundle.dimension))
                }
                found += Set(answer.itemIDs).intersection(exact.itemIDs).count
                wanted += exact.itemIDs.count
            }
            #expect(wanted > 0 && Double(found) / Double(wanted) >= 0.8, "recall \(Double(found) / Double(max(wanted, 1)))")
        }
    }

    @Test func swapWhileRequestsAreInFlightAndCorruptBundleIsRefused() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let user = try fixture.knownUser()
            let registry = fixture.lab.lab.registry
            let bundles: Set<String> = [fixture.lab.first, fixture.lab.second]
            try await fixture.app.test(.inProcess) { client in
                try await withThrowingTaskGroup(of: [String].self) { group in
                    for _ in 0..<4 {
                        group.addTask {
                            var seen: [String] = []
                            for _ in 0..<25 {
                                let response = try await client.execute(uri: "/v1/users/\(user)/recommendations?n=3", method: .get)
                                #expect(response.status == .ok)
                                seen.append(try decode(Recommendations.self, response).bundle)
                            }
                            return seen
                        }
                    }
                    group.addTask {
                        try await registry.promote(fixture.lab.second, actor: "t", reason: "swap", evidence: .override(reason: "test"), expectedGeneration: 1)
                        let swapped = await fixture.components.reloader.reloadIfChanged()
                        #expect(swapped)
                        return []
                    }
                    for try await seen in group { #expect(seen.allSatisfy { bundles.contains($0) }) }
                }
                #expect(fixture.components.store.current.production?.id == fixture.lab.second)

                // Promote a bundle with a flipped byte: it is refused and the old one keeps serving.
                let target = try fixture.lab.lab.bundleFolder(fixture.lab.first).appendingPathComponent(BundleFiles.itemFactors)
                var data = try Data(contentsOf: target)
                data[17] ^= 0x40
                try data.write(to: target)
                try await registry.rollback(to: nil, actor: "t", reason: "back to a corrupt bundle", expectedGeneration: 2)
                let swapped = await fixture.components.reloader.reloadIfChanged()
                #expect(swapped == false)
                #expect(fixture.components.store.current.production?.id == fixture.lab.second)
                try await client.execute(uri: "/v1/users/\(user)/recommendations?n=3", method: .get) { response in
                    #expect(response.status == .ok)
                    let served = try decode(Recommendations.self, response).bundle
                    #expect(served == fixture.lab.second)
                }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(String(buffer: response.body).contains("duet_swap_refusals_total 1"))
                }
            }
        }
    }
}
