public import CoreMetrics
import HTTPTypes
import Hummingbird
import Synchronization

/// Serve's own instruments, created from an explicit factory so tests never touch the global one.
public final class ServeMetrics: Sendable {
    let factory: any MetricsFactory
    let generation: Gauge
    let eventsIngested: Counter
    let exposuresLogged: Counter
    let exposuresSpilled: Counter
    /// Exposures neither logged nor spilled (the spill file could not be written): alert on it.
    let exposuresLost: Counter
    /// Spilled exposures stored by a replay (each once: replay skips request ids already stored).
    let exposuresReplayed: Counter
    /// Exposures waiting in memory for the log, plus one batch being appended.
    let exposureQueueDepth: Gauge
    /// Ingest batches refused with 503: shed for load, or not stored because the store failed.
    let ingestShed: Counter
    let ingestFailures: Counter
    let swaps: Counter
    let swapRefusals: Counter
    /// One counter per fallback reason, made once: fallbacks happen on the request path.
    private let fallbacks = Mutex<[String: Counter]>([:])
    /// Recommendations by what answered them: "exact", an HNSW index's name (the exact scan handed
    /// over) or "popularity".
    private let answered = Mutex<[String: Counter]>([:])
    /// Requests refused for their key: unauthenticated, forbidden or rate_limited.
    private let denied = Mutex<[String: Counter]>([:])
    private let routes = Mutex<[RouteKey: RouteMetrics]>([:])

    struct RouteKey: Hashable {
        var route: String
        var method: HTTPRequest.Method
        var status: Int
    }

    struct RouteMetrics: Sendable {
        let requests: Counter
        let errors: Counter
        let duration: Timer

        func record(since start: ContinuousClock.Instant) {
            requests.increment()
            let elapsed = ContinuousClock.now - start
            duration.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
        }
    }

    public init(factory: any MetricsFactory) {
        self.factory = factory
        generation = Gauge(label: "duet_bundle_generation", factory: factory)
        eventsIngested = Counter(label: "duet_events_ingested_total", factory: factory)
        exposuresLogged = Counter(label: "duet_exposures_logged_total", factory: factory)
        exposuresSpilled = Counter(label: "duet_exposures_spilled_total", factory: factory)
        exposuresLost = Counter(label: "duet_exposures_lost_total", factory: factory)
        exposuresReplayed = Counter(label: "duet_exposures_replayed_total", factory: factory)
        exposureQueueDepth = Gauge(label: "duet_exposure_queue_depth", factory: factory)
        ingestShed = Counter(label: "duet_ingest_shed_total", factory: factory)
        ingestFailures = Counter(label: "duet_ingest_store_failures_total", factory: factory)
        swaps = Counter(label: "duet_swaps_total", factory: factory)
        swapRefusals = Counter(label: "duet_swap_refusals_total", factory: factory)
    }

    func fallback(_ reason: String) {
        Self.counter(in: fallbacks, label: "duet_fallbacks_total", dimension: "reason", value: reason, factory: factory).increment()
    }

    func accessDenied(_ reason: String) {
        Self.counter(in: denied, label: "duet_access_denied_total", dimension: "reason", value: reason, factory: factory).increment()
    }

    func answered(by index: String) {
        Self.counter(in: answered, label: "duet_recommendations_total", dimension: "index", value: index, factory: factory).increment()
    }

    func route(_ route: String, method: HTTPRequest.Method, status: HTTPResponse.Status) -> RouteMetrics {
        let key = RouteKey(route: route, method: method, status: Int(status.code))
        return routes.withLock { routes in
            if let existing = routes[key] { return existing }
            let dimensions = [("http.route", route), ("http.request.method", method.rawValue), ("http.response.status_code", "\(status.code)")]
            let metrics = RouteMetrics(
                requests: Counter(label: "hb.requests", dimensions: dimensions, factory: factory),
                errors: Counter(label: "hb.request.errors", dimensions: dimensions, factory: factory),
                duration: Timer(label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory))
            routes[key] = metrics
            return metrics
        }
    }

    private static func counter(in counters: borrowing Mutex<[String: Counter]>, label: String, dimension: String, value: String,
                                factory: any MetricsFactory) -> Counter {
        counters.withLock { counters in
            if let existing = counters[value] { return existing }
            let counter = Counter(label: label, dimensions: [(dimension, value)], factory: factory)
            counters[value] = counter
            return counter
        }
    }
}

/// Traffic, errors and latency per route, under the names Hummingbird's MetricsMiddleware uses.
/// Latency is taken when the handler returns instead of after the body is written: wrapping the
/// body to time its write (as that middleware does) makes Hummingbird send the head, the body and
/// the end as three separate writes, each a hop to the event loop and a syscall.
struct RouteMetricsMiddleware: RouterMiddleware {
    typealias Context = ServeRequestContext
    let metrics: ServeMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.route(context.endpointPath ?? "Unknown", method: request.method, status: response.status).record(since: started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let route = metrics.route(context.endpointPath ?? "NotFound", method: request.method, status: status)
            route.errors.increment()
            route.record(since: started)
            throw error
        }
    }
}
