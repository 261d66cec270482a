import DuetCore
import DuetServe
import DuetStore
import DuetTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import DuetHTTPTestSupport
import Logging
import NIOCore
import Synchronization
import Testing

/// With keys configured, every /v1 route needs one holding its role: reads too, since every
/// recommendation writes an exposure that experiments are analysed on.
@Suite struct AccessTests {
    static let readSecret = "read-secret-0123456789abcdef"
    static let ingestSecret = "ingest-secret-0123456789abcdef"
    static let metricsSecret = "metrics-secret-0123456789abcdef"
    static let limitedSecret = "limited-secret-0123456789abcdef"
    static let keys = AccessKeys(keys: [
        AccessKey(name: "web", secret: readSecret, roles: [.read]),
        AccessKey(name: "collector", secret: ingestSecret, roles: [.ingest]),
        AccessKey(name: "prometheus", secret: metricsSecret, roles: [.metrics]),
        AccessKey(name: "partner", secret: limitedSecret, roles: [.read], rate: RateLimit(perSecond: 0.01, burst: 2)),
    ], protectMetrics: true)

    func bearer(_ secret: String) -> HTTPFields {
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(secret)"
        return headers
    }

    @Test func everyV1RouteNeedsAKeyWithItsRoleAndRefusalsWriteNothing() async throws {
        try await withScratchFolder { folder in
            let lines = LogLines()
            let fixture = try await ServeFixture.make(in: folder, access: Self.keys,
                                                      logger: Logger(label: "test") { _ in CapturingLogHandler(lines: lines) })
            let user = try fixture.knownUser()
            let item = try #require(fixture.components.store.current.production).bundle.itemIDs[0]
            let event = #"[{"user":"u1","item":"t2","timestamp":1}]"#
            try await fixture.app.test(.inProcess) { client in
                for uri in ["/v1/users/\(user)/recommendations", "/v1/items/\(item)/similar"] {
                    try await client.execute(uri: uri, method: .get) { response in
                        #expect(response.status == .unauthorized, "\(uri) without a key")
                        #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                    }
                    try await client.execute(uri: uri, method: .get, headers: bearer("not-a-key-0123456789")) { response in
                        #expect(response.status == .unauthorized, "\(uri) with an unknown key")
                    }
                    try await client.execute(uri: uri, method: .get, headers: bearer(Self.ingestSecret)) { response in
                        #expect(response.status == .forbidden, "\(uri) with the ingest key")
                    }
                    try await client.execute(uri: uri, method: .get, headers: bearer(Self.readSecret)) { response in
                        #expect(response.status == .ok, "\(uri) with the read key")
                    }
                    var header = HTTPFields()
                    header[HTTPField.Name("X-API-Key")!] = Self.readSecret
                    try await client.execute(uri: uri, method: .get, headers: header) { response in
                        #expect(response.status == .ok, "\(uri) with X-API-Key")
                    }
                }
                // A read key, as a web client holds, cannot ingest.
                try await client.execute(uri: "/v1/events", method: .post, headers: bearer(Self.readSecret), body: ByteBuffer(string: event)) { response in
                    #expect(response.status == .forbidden)
                    #expect(String(buffer: response.body).contains("'ingest' role"))
                }
                try await client.execute(uri: "/v1/events", method: .post, body: ByteBuffer(string: event)) { response in
                    #expect(response.status == .unauthorized)
                }
                try await client.execute(uri: "/v1/events", method: .post, headers: bearer(Self.ingestSecret), body: ByteBuffer(string: event)) { response in
                    #expect(response.status == .accepted)
                }
                // Probes stay open; /metrics is protected here, by configuration.
                for uri in ["/livez", "/readyz", "/openapi.json"] {
                    try await client.execute(uri: uri, method: .get) { response in #expect(response.status == .ok, "\(uri)") }
                }
                try await client.execute(uri: "/metrics", method: .get) { response in #expect(response.status == .unauthorized) }
                try await client.execute(uri: "/metrics", method: .get, headers: bearer(Self.readSecret)) { response in #expect(response.status == .forbidden) }
                try await client.execute(uri: "/metrics", method: .get, headers: bearer(Self.metricsSecret)) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains(#"duet_access_denied_total{reason="unauthenticated"}"#))
                }
            }
            while fixture.components.exposures.pending > 0 { await fixture.components.exposures.flush() }
            // Only the two authorised recommendation requests left exposures; only one batch was stored.
            #expect(try await fixture.eventLog.exposures(after: 0, matching: EventFilter(), limit: 100).count == 2)
            #expect(try await fixture.eventLog.count(matching: EventFilter()) == 1)
            let logged = lines.all.joined(separator: "\n")
            for secret in [Self.readSecret, Self.ingestSecret, Self.metricsSecret, "not-a-key-0123456789"] {
                #expect(!logged.contains(secret), "a key reached the log")
            }
        }
    }

    @Test func aKeyOverItsRateGets429WithRetryAfter() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder, access: Self.keys)
            let user = try fixture.knownUser()
            try await fixture.app.test(.inProcess) { client in
                for _ in 0..<2 {
                    try await client.execute(uri: "/v1/users/\(user)/recommendations", method: .get, headers: bearer(Self.limitedSecret)) { response in
                        #expect(response.status == .ok)
                    }
                }
                try await client.execute(uri: "/v1/users/\(user)/recommendations", method: .get, headers: bearer(Self.limitedSecret)) { response in
                    #expect(response.status == .tooManyRequests)
                    let wait = try #require(response.headers[.retryAfter].flatMap(Int.init))
                    // Slow enough that a loaded machine cannot refill the bucket between the requests.
                    #expect((90...100).contains(wait), "at 0.01/s a token takes up to 100 s")
                }
                // Another key's bucket is its own.
                try await client.execute(uri: "/v1/users/\(user)/recommendations", method: .get, headers: bearer(Self.readSecret)) { response in
                    #expect(response.status == .ok)
                }
            }
        }
    }

    @Test func theOpenAPIDocumentStatesWhatEachRouteNeeds() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder, access: Self.keys)
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: "/openapi.json", method: .get) { response in
                    let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
                    let paths = try #require(document["paths"] as? [String: [String: [String: Any]]])
                    for (path, method) in [("/v1/users/{user}/recommendations", "get"), ("/v1/items/{item}/similar", "get"), ("/v1/events", "post"), ("/metrics", "get")] {
                        let operation = try #require(paths[path]?[method])
                        #expect((operation["security"] as? [Any])?.isEmpty == false, "\(path) states its key")
                        let responses = try #require(operation["responses"] as? [String: Any])
                        for status in ["401", "403", "429"] { #expect(responses[status] != nil, "\(path) documents \(status)") }
                    }
                }
            }
        }
    }
}

@Suite struct AccessLogTests {
    @Test func everySampledRequestGetsOneAccessLineAndUnsampledOnesNone() async throws {
        for (sample, expected) in [(1.0, 3), (0.0, 0)] {
            try await withScratchFolder { folder in
                let lines = LogLines()
                let fixture = try await ServeFixture.make(in: folder, accessLogSample: sample,
                                                          logger: Logger(label: "test") { _ in CapturingLogHandler(lines: lines) })
                let user = try fixture.knownUser()
                try await fixture.app.test(.inProcess) { client in
                    for uri in ["/v1/users/\(user)/recommendations?n=3&exclude=secret-list", "/v1/items/nothing-here/similar", "/livez"] {
                        try await client.execute(uri: uri, method: .get) { _ in }
                    }
                }
                let access = lines.all.filter { $0.hasPrefix("info access ") }
                #expect(access.count == expected, "\(sample): \(access)")
                guard sample == 1 else { return }
                let recommendation = try #require(access.first { $0.contains("/recommendations") })
                #expect(recommendation.contains(#""status": 200"#) && recommendation.contains(#""method": GET"#) && recommendation.contains("duration_ms"))
                #expect(recommendation.contains(#""route": /v1/users/{user}/recommendations"#) && recommendation.contains("hb.request.id"))
                #expect(!recommendation.contains("secret-list"), "the query is not logged")
                #expect(access.contains { $0.contains("/v1/items/nothing-here/similar") && $0.contains(#""status": 404"#) }, "refusals are logged too: \(access)")
            }
        }
    }
}

final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }
}

struct CapturingLogHandler: LogHandler {
    let lines: LogLines
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        lines.append("\(level) \(message) \(metadata ?? [:]) \(self.metadata)")
    }
}
