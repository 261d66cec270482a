import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetServe
import DuetStore
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve recommendations and similar items over HTTP from the production bundle.",
        discussion: """
            Serve opens the registry read-only and polls its serving version; when the Lab promotes, \
            rolls back or starts an experiment, it loads and verifies the new bundles off the request \
            path and swaps in one step. Feedback events are stored durably before 202; each \
            recommendation's exposure is appended to the event log in batches.

            On PostgreSQL, Serve connects with --serve-registry under a role that may only read the \
            serving tables and insert events and exposures (`duet lab grants` sets it up); it never \
            migrates, and refuses to start on a schema it does not know.

            Environment: DUET_HOME, DUET_PORT, DUET_API_KEY and DUET_SERVE_REGISTRY stand in for --home, \
            --port, --api-key and --serve-registry.
            Routes: GET /v1/users/{user}/recommendations, GET /v1/items/{item}/similar, POST /v1/events,
            GET /livez, /readyz, /metrics, /openapi.json.
            """
    )
    @OptionGroup var home: HomeOptions
    @Option(help: ArgumentHelp("Serve's own PostgreSQL URL, under the role `duet lab grants` sets up.",
                               discussion: "Falls back to $DUET_SERVE_REGISTRY, then to --registry.", valueName: "url"))
    var serveRegistry: String?
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port (default: $DUET_PORT, then 8080).") var port: Int?
    @Option(help: "Seconds between registry polls.") var pollInterval: Double = 1
    @Option(help: "Largest request body accepted, in bytes.") var maxBodyBytes: Int = 4 << 20
    @Option(help: "Event batches stored at once; past it POST /v1/events answers 503 with Retry-After.") var maxIngestInFlight: Int = 32
    @Option(help: "Body bytes of event batches taken in at once (by Content-Length); past it, 503 with Retry-After.") var maxIngestBytes: Int = 32 << 20
    @Option(help: "Seconds an event append may take before the client gets 503 with Retry-After.") var ingestTimeout: Double = 3
    @Option(help: "Hours of the event log read at start for what users just consumed; the tail is followed after.") var recentWindow: Double = 168
    @Option(help: "Key that POST /v1/events must present (default: $DUET_API_KEY; none means open).") var apiKey: String?
    @Option(help: "Users with fewer training interactions get the popularity list.") var minHistory: Int = 1
    @Option(help: ArgumentHelp(
        "Most item rows an exact recommendation may read before HNSW answers instead.",
        discussion: "Rows are read longest first and the scan stops once no row left can make the list, which for factor models is usually a few per cent of the catalogue; catalogues up to this size are always exact."))
    var annThreshold: Int = 20_000
    @Option(help: "HNSW beam width for recommendations the exact scan hands over (at least n is used); `duet bench recommend --ef` reports its recall.")
    var ef: Int = ServeSettings.defaultRecommendationBeam

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var configuration = ServeSettings(home: home.resolved)
        configuration.host = host
        configuration.port = try port ?? environment["DUET_PORT"].map { text in
            guard let value = Int(text) else { throw ValidationError("DUET_PORT '\(text)' is not a port number") }
            return value
        } ?? 8080
        guard (0...65_535).contains(configuration.port) else { throw ValidationError("--port must be 0–65535") }
        guard pollInterval > 0, pollInterval <= 3_600 else { throw ValidationError("--poll-interval must be in (0, 3600] seconds") }
        guard maxBodyBytes >= 1_024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        configuration.pollInterval = .milliseconds(Int(pollInterval * 1_000))
        configuration.maxBodyBytes = maxBodyBytes
        guard (1...10_000).contains(maxIngestInFlight) else { throw ValidationError("--max-ingest-in-flight must be 1–10000") }
        guard ingestTimeout >= 0.1, ingestTimeout <= 600 else { throw ValidationError("--ingest-timeout must be 0.1–600 seconds") }
        configuration.maxIngestInFlight = maxIngestInFlight
        guard maxIngestBytes >= maxBodyBytes else { throw ValidationError("--max-ingest-bytes must be at least --max-body-bytes (\(maxBodyBytes))") }
        configuration.maxIngestBytes = maxIngestBytes
        configuration.ingestTimeout = .milliseconds(Int(ingestTimeout * 1_000))
        guard recentWindow >= 0, recentWindow <= 24 * 366 else { throw ValidationError("--recent-window must be 0–8784 hours") }
        configuration.recentWindow = .seconds(Int(recentWindow * 3_600))
        configuration.apiKey = apiKey ?? environment["DUET_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        configuration.minimumHistory = minHistory
        guard annThreshold >= 0 else { throw ValidationError("--ann-threshold must be 0 or more") }
        guard (1...10_000).contains(ef) else { throw ValidationError("--ef must be 1–10000") }
        configuration.annThreshold = annThreshold
        configuration.recommendationBeam = ef

        let duetHome = configuration.home
        guard home.registryURL != nil || serveRegistry != nil || environment["DUET_SERVE_REGISTRY"] != nil || FileManager.default.fileExists(atPath: duetHome.registryPath.path) else {
            throw DuetError.notFound(kind: "registry", id: "\(duetHome.registryPath.path) (create it with `duet lab train --register` and promote a model)")
        }
        try FileManager.default.createDirectory(at: duetHome.root, withIntermediateDirectories: true)
        let prometheus = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: prometheus))
        let level = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        let logger = Logger(label: "duet-serve") { ServeLogHandler(label: $0, logLevel: level) }
        let serveURL = serveRegistry ?? environment["DUET_SERVE_REGISTRY"].flatMap { $0.isEmpty ? nil : $0 }
        let (source, log) = try await home.openForServe(serveURL: serveURL, ingestTimeout: configuration.ingestTimeout)
        let app = try await buildApplication(configuration: configuration, source: source, eventSink: log, eventTail: log,
                                             prometheus: prometheus, logger: logger)
        try await app.runService()
    }
}
