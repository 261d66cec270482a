public import DuetCore

import DuetSimilarity
import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
public import Logging
import Metrics
import NIOCore
import NIOFoundationCompat
import ServiceLifecycle
import Synchronization
public import Prometheus

/// Serve's settings; `duet serve --help` documents each.
public struct ServeSettings: Sendable {
    public var home: DuetHome
    public var host = "127.0.0.1"
    public var port = 8080
    public var pollInterval: Duration = .seconds(1)
    public var maxBodyBytes = 4 << 20
    public var maxEventsPerBatch = 10_000
    /// Most ids in one `exclude=` list: at 256 characters each, percent-encoded, a full list still
    /// fits in `maxRequestHeadBytes`.
    public static let maxExcludedItems = 100
    /// Request line plus headers; a longer head is refused by the HTTP parser with a bare 400.
    public static let maxRequestHeadBytes = 512 << 10
    /// Keys and their roles; with none, every route is open.
    public var access = AccessKeys(keys: [])
    public var minimumHistory = 1
    /// Most item rows the exact scan may read for one list before the HNSW index answers instead.
    public var annThreshold = 20_000
    /// Most bytes each factor bundle's precomputed user lists may take (0: none); see `PrecomputedLists`.
    public var precomputedListsMaxBytes = 64 << 20
    /// Items in each precomputed list: requests for up to this many are answered from it.
    public var precomputedListDepth = 40
    /// HNSW beam width for recommendations (`duet bench recommend` reports its recall).
    public var recommendationBeam = Self.defaultRecommendationBeam
    public static let defaultRecommendationBeam = 32
    public var exposureQueueCapacity = 50_000
    /// Ingest bodies collected or being stored at once; past it POST /v1/events answers 503 at once.
    public var maxIngestInFlight = 32
    /// Body bytes admitted at once (each request reserves its Content-Length, or `maxBodyBytes` when
    /// it has none); past it POST /v1/events answers 503 at once. Small batches are never short of
    /// it; large ones are, so memory for bodies and their decoded events stays near 3× this.
    public var maxIngestBytes = 32 << 20
    /// How long an append may take before the client gets 503 with Retry-After. Give the store's own
    /// timeout less than this (the SQLite sink's busy timeout is `ingestTimeout` / 2), so a write that
    /// gives up is one that never committed.
    public var ingestTimeout: Duration = .seconds(3)
    /// How long Serve's background calls (exposure batches, spill replay, the log's tail, registry
    /// polls) wait for a store before giving up and trying again later; shutdown is bounded by it too.
    public var storeTimeout: Duration = .seconds(10)
    /// How far back a starting replica reads the event log for what users consumed (at most
    /// `RecentHistory.itemsPerUser` items each); afterwards it follows the log's tail every `pollInterval`.
    public var recentWindow: Duration = .seconds(7 * 24 * 3_600)
    public var assigner: any ArmAssigner = HashedArmAssigner()
    /// Share of requests logged as one access line each (0 = none, 1 = all); sampled, because at
    /// thousands of requests a second every line would cost more than the answers.
    public var accessLogSample = 0.0

    public init(home: DuetHome) { self.home = home }
}

/// Per-request data: the request id Hummingbird assigns rides in the logger.
public struct ServeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

/// The parts of a running Serve, so tests can drive the reload and the exposure flush directly.
public struct ServeComponents: Sendable {
    public let store: ServingStateStore
    public let reloader: StateReloader
    public let exposures: ExposureWriter
    public let shadows: ShadowWriter
    public let recommender: Recommender
    public let metrics: ServeMetrics
    /// Follows the event log's tail; nil when Serve was built without one.
    public let consumption: ConsumptionTail?
    /// Event batches being collected or stored right now.
    public let ingestInFlight = IngestCounter()
}

/// The ingest route's requests and body bytes in flight, bounded together.
public final class IngestCounter: Sendable {
    private let value = Atomic<Int>(0)
    private let bytes = Atomic<Int>(0)
    public var current: Int { value.load(ordering: .relaxed) }
    public var currentBytes: Int { bytes.load(ordering: .relaxed) }

    package init() {}

    /// Admits a request reserving `reserved` bytes, or returns false (and reserves nothing) when it
    /// would pass either bound.
    package func enter(reserving reserved: Int, maxRequests: Int, maxBytes: Int) -> Bool {
        let requests = value.add(1, ordering: .relaxed).newValue
        let total = bytes.add(reserved, ordering: .relaxed).newValue
        // One request is always admitted, however large, so a lone big batch is never refused.
        if requests == 1 || (requests <= maxRequests && total <= maxBytes) { return true }
        leave(releasing: reserved)
        return false
    }

    package func leave(releasing reserved: Int) {
        value.subtract(1, ordering: .relaxed)
        bytes.subtract(reserved, ordering: .relaxed)
    }
}

/// Builds Serve: components, then the router. Serve is handed only what it may use: the registry's
/// read-only serving source and the event log's append-only sink.
public func buildServe(configuration: ServeSettings, source: any ServingSource, eventSink: any EventSink, eventTail: (any EventTail)? = nil,
                       prometheus: PrometheusCollectorRegistry?, logger: Logger) async throws -> (Router<ServeRequestContext>, ServeComponents) {
    let metricsFactory: any MetricsFactory = prometheus.map { PrometheusMetricsFactory.serve(registry: $0) } ?? NOOPMetricsHandler.instance
    let metrics = ServeMetrics(factory: metricsFactory)
    let store = ServingStateStore()
    let reloader = StateReloader(source: source, bundles: configuration.home.bundlesFolder, indexes: configuration.home.indexesFolder, store: store,
                                 interval: configuration.pollInterval, storeTimeout: configuration.storeTimeout,
                                 lists: ListPrecomputation(depth: configuration.precomputedListDepth, maxBytes: configuration.precomputedListsMaxBytes,
                                                           annThreshold: configuration.annThreshold),
                                 metrics: metrics, logger: logger)
    let exposures = ExposureWriter(log: eventSink, spillFolder: configuration.home.root.appendingPathComponent("spill"),
                                   capacity: configuration.exposureQueueCapacity, storeTimeout: configuration.storeTimeout,
                                   metrics: metrics, logger: logger)
    let recent = RecentHistory()
    let consumption = eventTail.map {
        ConsumptionTail(tail: $0, recent: recent, window: configuration.recentWindow, interval: configuration.pollInterval,
                        storeTimeout: configuration.storeTimeout, logger: logger)
    }
    // What users just consumed, from the log, before the first request: a restart forgets nothing.
    do { try await consumption?.catchUp() } catch { logger.error("event log tail unreadable at start: \(error)") }
    let shadows = ShadowWriter(sink: eventSink, metrics: metrics, logger: logger)
    let recommender = Recommender(store: store, exposures: exposures, shadows: shadows, recent: recent, metrics: metrics,
                                  minimumHistory: configuration.minimumHistory, annThreshold: configuration.annThreshold,
                                  recommendationBeam: configuration.recommendationBeam, assigner: configuration.assigner)
    // Load what production is before accepting traffic, so /readyz is true from the first request.
    await reloader.reloadIfChanged()
    let components = ServeComponents(store: store, reloader: reloader, exposures: exposures, shadows: shadows, recommender: recommender,
                                     metrics: metrics, consumption: consumption)
    let router = buildRouter(configuration: configuration, components: components, eventSink: eventSink, prometheus: prometheus)
    return (router, components)
}

public func buildApplication(configuration: ServeSettings, source: any ServingSource, eventSink: any EventSink, eventTail: (any EventTail)? = nil,
                             prometheus: PrometheusCollectorRegistry?, logger: Logger) async throws -> some ApplicationProtocol {
    let (router, components) = try await buildServe(configuration: configuration, source: source, eventSink: eventSink, eventTail: eventTail,
                                                    prometheus: prometheus, logger: logger)
    var services: [any Service] = [components.reloader, components.exposures, components.shadows]
    if let consumption = components.consumption { services.append(consumption) }
    let http1 = HTTP1Channel.Configuration(httpDecoderConfiguration: .init(maxHeaderFieldSize: ServeSettings.maxRequestHeadBytes,
                                                                            maxHeaderListSize: ServeSettings.maxRequestHeadBytes))
    return Application(router: router, server: .http1(configuration: http1),
                       configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "duet-serve"),
                       services: services, logger: logger)
}

func buildRouter(configuration: ServeSettings, components: ServeComponents, eventSink: any EventSink,
                 prometheus: PrometheusCollectorRegistry?) -> Router<ServeRequestContext> {
    let router = Router(context: ServeRequestContext.self)
    // Metrics outside the error middleware: they see the status the client gets, not the raw error
    // (an unknown item is counted and logged as the 404 it becomes, not as a 500).
    router.middlewares.add(RouteMetricsMiddleware(metrics: components.metrics, accessLogSample: configuration.accessLogSample))
    router.middlewares.add(JSONErrorMiddleware())
    let recommender = components.recommender
    let store = components.store

    router.get("livez") { _, _ in try jsonResponse(["status": "ok"]) }

    router.get("readyz") { _, _ in
        let state = store.current
        guard let production = state.production else {
            return try jsonResponse(Readiness(ready: false, bundle: nil, generation: state.generation, registryVersion: state.version,
                                              reason: "no verified production bundle is loaded"), status: .serviceUnavailable)
        }
        let pending = store.pending
        return try jsonResponse(Readiness(ready: true, bundle: production.id, generation: state.generation, registryVersion: state.version,
                                          activateAt: state.activateAt, activatedAt: state.activatedAt, lateByMs: state.lateByMillis,
                                          pendingVersion: pending?.version, pendingActivateAt: pending?.activateAt, reason: nil))
    }

    let access = configuration.access
    router.get("metrics") { request, _ in
        if access.protectMetrics { try admit(request, role: .metrics, access: access, metrics: components.metrics) }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: MetricsHelp.annotate(prometheus?.emitToString() ?? ""))))
    }

    let openAPI = OpenAPIDocument.json(configuration)
    router.get("openapi.json") { _, _ in
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: openAPI)))
    }

    let v1 = router.group("v1").add(middleware: AccessMiddleware(access: access, metrics: components.metrics))
    v1.get("users/:user/recommendations") { request, context in
        let user = try pathIdentifier(context, "user")
        // Parsed once: each access to queryParameters parses the query string again.
        let query = request.uri.queryParameters
        let n = try count(query, default: 20)
        let exclude = try identifierList(query.get("exclude"), name: "exclude")
        let label = query.get("context")
        if let label, Identifier.problem(with: label) != nil || label.unicodeScalars.count > 64 {
            throw HTTPError(.badRequest, message: "context must be a short label without control characters")
        }
        let reply = try recommender.recommend(user: user, n: n, exclude: exclude, context: label, explain: try explanationSource(query))
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: reply.jsonBytes())))
    }

    v1.get("items/:item/similar") { request, context in
        let item = try pathIdentifier(context, "item")
        let query = request.uri.queryParameters
        let n = try count(query, default: 20)
        let index = query.get("index")
        let exclude = try identifierList(query.get("exclude"), name: "exclude")
        return try jsonResponse(try recommender.similar(item: item, n: n, index: index, filters: try itemFilters(query), exclude: exclude))
    }

    // Index names hold '/', written as it is or as %2F: the name is everything between `similar/`
    // and the last `/items/`.
    v1.get("similar/**") { request, context in
        let path = context.parameters.getCatchAll().map { $0.contains("%") ? $0.removingPercentEncoding ?? String($0) : String($0) }
        guard path.count >= 3, path[path.count - 2] == "items" else {
            throw HTTPError(.notFound, message: "expected /v1/similar/{index}/items/{item}")
        }
        let name = path.dropLast(2).joined(separator: "/")
        do { try IndexName.validate(name) } catch { throw HTTPError(.badRequest, message: "\(error)") }
        let item = path[path.count - 1]
        if let problem = Identifier.problem(with: item) { throw HTTPError(.badRequest, message: "item id \(problem)") }
        let query = request.uri.queryParameters
        let n = try count(query, default: 20)
        let filters = try itemFilters(query)
        let exclude = try identifierList(query.get("exclude"), name: "exclude")
        return try jsonResponse(try recommender.similar(item: item, inIndex: name, n: n, filters: filters, exclude: exclude))
    }

    let ingestInFlight = components.ingestInFlight
    v1.post("events") { request, _ in
        let tooLarge = HTTPError(.contentTooLarge, message: "the body is larger than \(configuration.maxBodyBytes) bytes (--max-body-bytes)")
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > configuration.maxBodyBytes { throw tooLarge }
        let reserved = declared ?? configuration.maxBodyBytes
        guard ingestInFlight.enter(reserving: reserved, maxRequests: configuration.maxIngestInFlight, maxBytes: configuration.maxIngestBytes) else {
            components.metrics.ingestShed.increment()
            throw ServeError.ingestOverloaded(limit: configuration.maxIngestInFlight)
        }
        defer { ingestInFlight.leave(releasing: reserved) }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: reserved)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
        // Data over the buffer's own storage: a 4 MiB body is not held twice while it decodes.
        let data = body.getData(at: body.readerIndex, length: body.readableBytes, byteTransferStrategy: .noCopy) ?? Data()
        let events = try decodeEvents(data, limit: configuration.maxEventsPerBatch)
        let key = request.headers[HTTPField.Name("Idempotency-Key")!]
        // Visible ASCII only: header values reach us already trimmed and re-encoded, so anything
        // wider could not be matched byte for byte on a retry.
        if let key, !(1...Identifier.maxLength).contains(key.utf8.count) || !key.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) {
            throw HTTPError(.badRequest, message: "Idempotency-Key must be 1–\(Identifier.maxLength) visible ASCII characters")
        }
        let receipt = try await appendWithin(configuration.ingestTimeout, events, key: key, to: eventSink, metrics: components.metrics)
        if !receipt.repeated {
            components.metrics.eventsIngested.increment(by: events.count)
            recommender.recordConsumption(events)
        }
        return try jsonResponse(EventsAccepted(accepted: receipt.accepted, lastSequence: receipt.lastSequence, repeated: key == nil ? nil : receipt.repeated),
                                status: .accepted)
    }
    return router
}

/// Every /v1 route needs a key once any is configured: POST needs `ingest`, GET `read`.
struct AccessMiddleware: RouterMiddleware {
    typealias Context = ServeRequestContext
    let access: AccessKeys
    let metrics: ServeMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !access.isOpen { try admit(request, role: request.method == .post ? .ingest : .read, access: access, metrics: metrics) }
        return try await next(request, context)
    }
}

func admit(_ request: Request, role: AccessRole, access: AccessKeys, metrics: ServeMetrics) throws {
    let bearer = request.headers[.authorization].flatMap { value -> String? in
        guard value.count > 7, value.prefix(7).lowercased() == "bearer " else { return nil }
        return String(value.dropFirst(7))
    }
    switch access.decide(presented: bearer ?? request.headers[HTTPField.Name("X-API-Key")!], role: role) {
    case .allowed: return
    case .unauthenticated:
        metrics.accessDenied("unauthenticated")
        throw ServeError.unauthenticated
    case let .forbidden(key, role):
        metrics.accessDenied("forbidden")
        throw ServeError.forbidden(key: key, role: role)
    case let .limited(key, retryAfter):
        metrics.accessDenied("rate_limited")
        throw ServeError.rateLimited(key: key, retryAfter: retryAfter)
    }
}

/// Appends, answering within `limit` whatever the store does. A store that fails, or does not answer
/// in time, becomes `ServeError.eventStoreUnavailable` (503 with Retry-After); invalid events stay 400.
/// The append runs in its own task, so a store that hangs cannot hold the response past `limit`
/// (a task group would wait for it).
func appendWithin(_ limit: Duration, _ events: [FeedbackEvent], key: String? = nil, to sink: any EventSink,
                  metrics: ServeMetrics) async throws -> BatchReceipt {
    do {
        return try await FirstAnswer.within(limit) {
            guard let key else { return BatchReceipt(lastSequence: try await sink.append(events: events), accepted: events.count, repeated: false) }
            return try await sink.append(events: events, batchKey: key)
        }
    } catch let error as DuetError {
        if case .invalidValue = error { throw error }
        metrics.ingestFailures.increment()
        throw ServeError.eventStoreUnavailable(error.description)
    } catch let error as ServeError {
        metrics.ingestFailures.increment()
        throw error
    } catch {
        metrics.ingestFailures.increment()
        throw ServeError.eventStoreUnavailable(String(describing: error).prefix(200).description)
    }
}

/// The first of an operation's answer and a deadline; the other is dropped.
final class FirstAnswer<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>
    private let timer = Mutex<Task<Void, Never>?>(nil)

    private init(_ continuation: CheckedContinuation<T, any Error>) { self.continuation = Mutex(continuation) }

    /// `what` names the store in the timeout's message (Serve's background loops log it).
    static func within(_ limit: Duration, what: String = "the event store",
                       _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let race = FirstAnswer(continuation)
            race.timer.withLock { $0 = Task {
                guard (try? await Task.sleep(for: limit)) != nil else { return }
                race.finish(.failure(ServeError.eventStoreUnavailable("\(what) gave no answer within \(limit)")))
            } }
            Task { race.finish(await Result(catching: operation)) }
        }
    }

    private func finish(_ result: Result<T, any Error>) {
        guard let waiting = continuation.withLock({ taken -> CheckedContinuation<T, any Error>? in defer { taken = nil }; return taken }) else { return }
        timer.withLock { $0?.cancel() }
        waiting.resume(with: result)
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

struct Readiness: Codable {
    var ready: Bool
    var bundle: String?
    var generation: Int
    /// The registry's serving version this replica's state was built from: it rises on every change
    /// Serve acts on (promotions, experiment starts, stops and phases, rollout stages).
    var registryVersion: Int
    /// When this version was to go live on every replica, when this replica swapped it in (epoch ms), and the gap.
    var activateAt: EpochMillis?
    var activatedAt: EpochMillis?
    var lateByMs: Int?
    /// A newer version loaded and verified, waiting for its activation time.
    var pendingVersion: Int?
    var pendingActivateAt: EpochMillis?
    var reason: String?
}

struct EventsAccepted: Codable {
    var accepted: Int
    var lastSequence: Int64?
    /// With an Idempotency-Key: true when the key was stored before and nothing was stored again.
    var repeated: Bool?
}

/// Accepts a JSON array of events or {"events": [...]}; every event is validated before any is stored.
func decodeEvents(_ data: Data, limit: Int) throws -> [FeedbackEvent] {
    struct Envelope: Decodable { var events: [FeedbackEvent] }
    // Refused before decoding: a body of tiny events would otherwise cost its whole decode to refuse.
    if arrayHoldsMoreElements(data, than: limit) {
        throw HTTPError(.contentTooLarge, message: "more than \(limit) events in one batch; the limit is \(limit)")
    }
    let decoder = JSONDecoder()
    let events: [FeedbackEvent]
    do {
        if data.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "[") {
            events = try decoder.decode([FeedbackEvent].self, from: data)
        } else {
            events = try decoder.decode(Envelope.self, from: data).events
        }
    } catch {
        throw HTTPError(.badRequest, message: "malformed events: \(DecodingProblem.describe(error))")
    }
    guard !events.isEmpty else { throw HTTPError(.badRequest, message: "the batch holds no events") }
    guard events.count <= limit else { throw HTTPError(.contentTooLarge, message: "\(events.count) events in one batch; the limit is \(limit)") }
    return events
}

/// True when `data` is a top-level JSON array with more than `limit` elements, counted from its
/// separators without decoding (commas inside strings, escaped quotes included, do not count).
/// Anything that is not an array, or ends first, is false: the decoder then names the problem.
func arrayHoldsMoreElements(_ data: Data, than limit: Int) -> Bool {
    data.withUnsafeBytes { bytes -> Bool in
        var index = 0
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return false }
        var depth = 0, separators = 0, inString = false, escaped = false
        // An index loop: a slice's iterator is generic code that debug builds (the tests) run slowly.
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"): depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 { return false }
            case UInt8(ascii: ",") where depth == 1:
                separators += 1
                if separators >= limit { return true }
            default: break
            }
        }
        return false
    }
}

func pathIdentifier(_ context: ServeRequestContext, _ name: String) throws -> String {
    let raw = try context.parameters.require(name)
    // Foundation's percent decoding goes through CFString; most ids have nothing to decode.
    let value = raw.utf8.contains(UInt8(ascii: "%")) ? raw.removingPercentEncoding ?? raw : raw
    if let problem = Identifier.problem(with: value) { throw HTTPError(.badRequest, message: "\(name) id \(problem)") }
    return value
}

func count(_ query: Parameters, default value: Int) throws -> Int {
    guard let text = query.get("n") else { return value }
    guard let n = Int(text), (1...1_000).contains(n) else {
        throw HTTPError(.badRequest, message: "n must be a whole number from 1 to 1000, got '\(text.prefix(20))'")
    }
    return n
}

func identifierList(_ text: String?, name: String) throws -> [String] {
    guard let text, !text.isEmpty else { return [] }
    // Empty entries count toward the limit (as /openapi.json's pattern counts them) and are skipped.
    let entries = text.split(separator: ",", omittingEmptySubsequences: false)
    let ids = entries.filter { !$0.isEmpty }.map(String.init)
    guard entries.count <= ServeSettings.maxExcludedItems else {
        throw HTTPError(.badRequest, message: "\(name) lists more than \(ServeSettings.maxExcludedItems) ids")
    }
    for id in ids {
        if let problem = Identifier.problem(with: id) { throw HTTPError(.badRequest, message: "\(name) id \(problem)") }
    }
    return ids
}

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    var headers = HTTPFields()
    headers[.contentType] = "application/json"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

struct ErrorBody: Codable {
    var error: String
    var status: Int
}

/// Every failure leaves as JSON naming the problem: bad input is a 4xx, never an empty 500.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = ServeRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ServeError {
            let status: HTTPResponse.Status = switch error {
            case .noProductionBundle, .ingestOverloaded, .eventStoreUnavailable, .indexFailedVerification: .serviceUnavailable
            case .unknownItem, .unknownIndex: .notFound
            case .unauthenticated: .unauthorized
            case .forbidden: .forbidden
            case .rateLimited: .tooManyRequests
            }
            var response = try jsonResponse(ErrorBody(error: error.description, status: Int(status.code)), status: status)
            if case .unauthenticated = error { response.headers[.wwwAuthenticate] = #"Bearer realm="duet""# }
            if case let .rateLimited(_, retryAfter) = error { response.headers[.retryAfter] = "\(retryAfter)" }
            // Every 503 says when to come back; an overloaded ingest sooner than a failing store.
            if status == .serviceUnavailable {
                response.headers[.retryAfter] = if case .ingestOverloaded = error { "1" } else { "2" }
            }
            return response
        } catch let error as HTTPError {
            if error.status == .notFound, error.body == nil, let allowed = ServeRoutes.methods(for: request.uri.path) {
                var response = try jsonResponse(ErrorBody(error: "\(request.method) is not allowed on \(request.uri.path); use \(allowed.joined(separator: ", "))",
                                                          status: 405), status: .methodNotAllowed)
                response.headers[.allow] = allowed.joined(separator: ", ")
                return response
            }
            let message = error.body ?? (error.status == .notFound ? "no route for \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return try jsonResponse(ErrorBody(error: message, status: Int(error.status.code)), status: error.status)
        } catch let error as DuetError {
            // Invalid input is the caller's to fix; anything else (e.g. the event log unreachable) is ours.
            let status: HTTPResponse.Status = if case .invalidValue = error { .badRequest } else { .serviceUnavailable }
            context.logger.error("request failed: \(error)")
            var response = try jsonResponse(ErrorBody(error: error.description, status: Int(status.code)), status: status)
            if status == .serviceUnavailable { response.headers[.retryAfter] = "2" }
            return response
        } catch {
            context.logger.error("request failed: \(error)")
            return try jsonResponse(ErrorBody(error: "internal error", status: 500), status: .internalServerError)
        }
    }
}

/// `filter=key=value` (or `key!=value`), repeatable: catalogue predicates for similar items.
func itemFilters(_ query: Parameters) throws -> [ItemPredicate] {
    do {
        return try ItemPredicate.parse(all: query.getAll("filter").map { String($0) })
    } catch {
        throw HTTPError(.badRequest, message: "\(error)")
    }
}

/// `explain=true` explains with the answering bundle's own similarity; `explainIndex=NAME` with a
/// published index: it implies `explain` and wins over `explain=false`, so every pair the schema
/// allows has one meaning.
func explanationSource(_ query: Parameters) throws -> ExplanationSource? {
    let flag = query.get("explain")
    guard flag == nil || flag == "true" || flag == "false" else {
        throw HTTPError(.badRequest, message: "explain must be true or false, got '\(flag!.prefix(20))'")
    }
    if let name = query.get("explainIndex") {
        do { try IndexName.validate(name) } catch { throw HTTPError(.badRequest, message: "explainIndex: \(error)") }
        return .index(name)
    }
    return flag == "true" ? .bundle : nil
}
