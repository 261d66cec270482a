public import CoreMetrics
import DuetCore
import HTTPTypes
import Hummingbird
import Logging
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
    let cutoversLate: Counter
    /// Published index artefacts refused at load; their name kept serving what it had.
    let indexRefusals: Counter
    /// What `explain=true` adds to a recommendation: finding each item's `because`.
    let explanationDuration: Timer
    /// One generation gauge per published index name, made when the name first loads.
    private let indexGenerations = Mutex<[String: Gauge]>([:])
    let shadowsLogged: Counter
    let shadowsDropped: Counter
    let cutoverLateness: Gauge
    /// Known users of the production bundle, and how many of them Serve answers from precomputed
    /// lists: on a factor bundle, a gap means its lists did not fit `--precomputed-lists-mb`.
    let productionUsers: Gauge
    let precomputedUsers: Gauge
    /// One counter per fallback reason, made once: fallbacks happen on the request path.
    private let fallbacks = Mutex<[String: Counter]>([:])
    /// Recommendations by what answered them: "exact", an HNSW index's name (the exact scan handed
    /// over) or "popularity".
    private let answered = Mutex<[String: Counter]>([:])
    /// Requests refused for their key: unauthenticated, forbidden or rate_limited.
    private let denied = Mutex<[String: Counter]>([:])
    /// Exposures per experiment, phase and assigned arm: what a live sample-ratio alert divides.
    private let armExposures = Mutex<[ArmKey: Counter]>([:])
    private let armShares = Mutex<[ArmKey: Gauge]>([:])

    struct ArmKey: Hashable {
        var experiment: String
        var phase: Int
        var arm: String
    }
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
            duration.record(since: start)
        }
    }

    public init(factory: any MetricsFactory) {
        self.factory = factory
        Gauge(label: "duet_build_info", dimensions: [("version", DuetBuild.version)], factory: factory).record(1)
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
        cutoversLate = Counter(label: "duet_cutovers_late_total", factory: factory)
        indexRefusals = Counter(label: "duet_index_refusals_total", factory: factory)
        explanationDuration = Timer(label: "duet_explanation_seconds", factory: factory)
        shadowsLogged = Counter(label: "duet_shadow_lists_logged_total", factory: factory)
        shadowsDropped = Counter(label: "duet_shadow_lists_dropped_total", factory: factory)
        cutoverLateness = Gauge(label: "duet_cutover_lateness_seconds", factory: factory)
        productionUsers = Gauge(label: "duet_production_users", factory: factory)
        precomputedUsers = Gauge(label: "duet_precomputed_users", factory: factory)
    }

    func fallback(_ reason: String) {
        Self.counter(in: fallbacks, label: "duet_fallbacks_total", dimension: "reason", value: reason, factory: factory).increment()
    }

    /// One arm's exposure counter; the same counter for the same arm across reloads.
    func recordIndexGeneration(_ name: String, _ generation: Int) {
        indexGenerations.withLock { gauges in
            let gauge = gauges[name] ?? Gauge(label: "duet_index_generation", dimensions: [("index", name)], factory: factory)
            gauges[name] = gauge
            gauge.record(generation)
        }
    }

    /// The share of assigned users each arm should get, beside its exposure counter, so an alert
    /// rule can test the observed split against it (a live sample-ratio check).
    func recordArmShares(experiment: String, phase: Int, shares: [(arm: String, share: Double)]) {
        armShares.withLock { gauges in
            for (arm, share) in shares {
                let key = ArmKey(experiment: experiment, phase: phase, arm: arm)
                let gauge = gauges[key] ?? Gauge(label: "duet_experiment_arm_share", dimensions: [("experiment", experiment), ("phase", "\(phase)"), ("arm", arm)],
                                                 factory: factory)
                gauges[key] = gauge
                gauge.record(share)
            }
        }
    }

    func exposureCounter(experiment: String, phase: Int, arm: String) -> Counter {
        armExposures.withLock { counters in
            let key = ArmKey(experiment: experiment, phase: phase, arm: arm)
            if let existing = counters[key] { return existing }
            let counter = Counter(label: "duet_experiment_exposures_total", dimensions: [("experiment", experiment), ("phase", "\(phase)"), ("arm", arm)],
                                  factory: factory)
            counters[key] = counter
            return counter
        }
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
                requests: Counter(label: "http_server_requests_total", dimensions: dimensions, factory: factory),
                errors: Counter(label: "http_server_request_errors_total", dimensions: dimensions, factory: factory),
                duration: Timer(label: "http_server_request_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory))
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

/// Traffic, errors and latency per route (OpenTelemetry's HTTP names, with Prometheus' units and `_total`).
/// Latency is taken when the handler returns instead of after the body is written: wrapping the
/// body to time its write (as that middleware does) makes Hummingbird send the head, the body and
/// the end as three separate writes, each a hop to the event loop and a syscall.
struct RouteMetricsMiddleware: RouterMiddleware {
    typealias Context = ServeRequestContext
    let metrics: ServeMetrics
    /// Share of requests given an access line; see `ServeSettings.accessLogSample`.
    var accessLogSample = 0.0

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            let route = metrics.route(context.endpointPath ?? (response.status == .notFound ? "NotFound" : "Unknown"),
                                      method: request.method, status: response.status)
            if response.status.code >= 500 { route.errors.increment() }
            route.record(since: started)
            logAccess(request, context: context, status: response.status, since: started)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let route = metrics.route(context.endpointPath ?? "NotFound", method: request.method, status: status)
            route.errors.increment()
            route.record(since: started)
            logAccess(request, context: context, status: status, since: started)
            throw error
        }
    }

    /// One line per sampled request, with the request id the logger already carries. The path names
    /// the user; the query is left out (it can hold a long exclude list), and keys never appear.
    private func logAccess(_ request: Request, context: Context, status: HTTPResponse.Status, since started: ContinuousClock.Instant) {
        guard accessLogSample > 0, accessLogSample >= 1 || Double.random(in: 0..<1) < accessLogSample else { return }
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) / 1e15
        context.logger.info("access", metadata: [
            "method": .string(request.method.rawValue), "route": .string(context.endpointPath ?? "none"),
            "path": .string(request.uri.path), "status": .stringConvertible(Int(status.code)),
            "duration_ms": .stringConvertible((milliseconds * 1_000).rounded() / 1_000),
        ])
    }
}

/// HELP text for every metric Serve exposes, added to the exposition in one place: swift-metrics
/// has no way to carry it, and `MetricsConventionTests` fails when a metric lacks one.
package enum MetricsHelp {
    package static let text: [String: String] = [
        "duet_build_info": "Always 1; the labels say which Duet build is serving.",
        "duet_bundle_generation": "Registry generation of the serving state currently loaded.",
        "duet_events_ingested_total": "Feedback events stored durably through POST /v1/events.",
        "duet_exposures_logged_total": "Exposures appended to the event log.",
        "duet_exposures_spilled_total": "Exposures written to the spill folder because the log could not take them.",
        "duet_exposures_lost_total": "Exposures neither logged nor spilled. Alert on any increase.",
        "duet_exposures_replayed_total": "Spilled exposures later stored by a replay.",
        "duet_exposure_queue_depth": "Exposures waiting in memory for the event log.",
        "duet_experiment_arm_share": "The share of an experiment's assigned users each arm should get, by experiment, phase and arm; docs/alerts.yml tests the exposures against it.",
        "duet_experiment_exposures_total": "Exposures per running experiment, phase and assigned arm; the live sample-ratio check divides these.",
        "duet_ingest_shed_total": "Event batches refused with 503 because ingest was full.",
        "duet_ingest_store_failures_total": "Event batches refused with 503 because the store failed or was too slow.",
        "duet_swaps_total": "Serving states swapped in after verification.",
        "duet_swap_refusals_total": "Bundles refused at load (checksum, format); serving stayed on the previous state.",
        "duet_explanation_seconds": "Time spent finding each listed item's because for explain=true requests.",
        "duet_index_refusals_total": "Published similarity index artefacts refused at load (checksum, format); the name kept serving its previous artefact.",
        "duet_index_generation": "Generation of each published similarity index this replica serves, by index name.",
        "duet_shadow_lists_logged_total": "Lists a shadowed candidate would have shown, stored apart from exposures (never shown, never counted as shown).",
        "duet_shadow_lists_dropped_total": "Shadow lists dropped because their buffer was full or the store failed; shown lists are never affected.",
        "duet_cutovers_late_total": "Serving states swapped in after their activation time: the replica was not ready in time and kept the old state until it was.",
        "duet_cutover_lateness_seconds": "How long after its activation time the newest serving state was swapped in (0 when on time).",
        "duet_fallbacks_total": "Recommendations served by a fallback, by reason.",
        "duet_production_users": "Users the production bundle knows.",
        "duet_precomputed_users": "Users of the production bundle answered from lists precomputed at load; the rest are scored per request (a factor bundle whose lists pass --precomputed-lists-mb, or an item-kNN bundle, which has none).",
        "duet_recommendations_total": "Recommendations by what answered them: exact scan, an HNSW index, or popularity.",
        "duet_access_denied_total": "Requests refused for their key: unauthenticated, forbidden or rate_limited.",
        "http_server_requests_total": "HTTP requests by route, method and status.",
        "http_server_request_errors_total": "HTTP requests answered with a 5xx status (ours to fix), by route, method and status.",
        "http_server_request_duration_seconds": "Time from a request's arrival to its handler's answer.",
    ]

    /// The exposition with a `# HELP` line before each metric's `# TYPE` line.
    package static func annotate(_ exposition: String) -> String {
        var lines: [Substring] = []
        for line in exposition.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).split(separator: " ").first.map(String.init) ?? ""
                if let help = text[name] { lines.append("# HELP \(name) \(help)") }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

extension Timer {
    func record(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
