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

            Keys: with any configured, every /v1 route needs one (Authorization: Bearer … or X-API-Key): \
            GET routes the `read` role, POST /v1/events the `ingest` role. --keys-file (or $DUET_KEYS_FILE) \
            names a JSON file of keys with roles and optional rate limits (`duet key` makes entries); \
            $DUET_API_KEY adds a key with every role and $DUET_READ_KEY one with `read` only. Keys are \
            never taken on the command line, where `ps` would show them, and never logged.

            Environment: DUET_HOME, DUET_PORT, DUET_SERVE_REGISTRY and DUET_LOG_FORMAT stand in for --home, \
            --port, --serve-registry and --log-format; DUET_LOG_LEVEL (trace … critical) sets the level.
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
    @Option(help: ArgumentHelp("JSON file of API keys, their roles and rate limits (default: $DUET_KEYS_FILE).",
                               discussion: "Without it, $DUET_API_KEY and $DUET_READ_KEY; with none of them every route is open.", valueName: "file"))
    var keysFile: String?
    @Option(help: "Users with fewer training interactions get the popularity list.") var minHistory: Int = 1
    @Option(help: "Log lines as logfmt or json (default: $DUET_LOG_FORMAT, then logfmt); the level comes from $DUET_LOG_LEVEL.") var logFormat: String?
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
        configuration.access = try ServeKeysLoader.load(file: keysFile, environment: environment)
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
        let levelText = environment["DUET_LOG_LEVEL"] ?? environment["LOG_LEVEL"]
        guard let level = levelText.map({ Logger.Level(rawValue: $0) }) ?? .info else {
            throw ValidationError("DUET_LOG_LEVEL '\(levelText ?? "")' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let formatText = logFormat ?? environment["DUET_LOG_FORMAT"] ?? LogFormat.logfmt.rawValue
        guard let format = LogFormat(rawValue: formatText) else {
            throw ValidationError("--log-format '\(formatText)' is not one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let logger = Logger(label: "duet-serve") { ServeLogHandler(label: $0, logLevel: level, format: format) }
        let serveURL = serveRegistry ?? environment["DUET_SERVE_REGISTRY"].flatMap { $0.isEmpty ? nil : $0 }
        let (source, log) = try await home.openForServe(serveURL: serveURL, ingestTimeout: configuration.ingestTimeout)
        if configuration.access.isOpen, !["127.0.0.1", "::1", "localhost"].contains(configuration.host) {
            logger.warning("listening on \(configuration.host) with no keys: anyone who reaches this port can write exposures and events (see --keys-file)")
        }
        logger.info("access: \(configuration.access.isOpen ? "open (no keys configured)" : configuration.access.keys.map { "\($0.name) [\($0.roles.map(\.rawValue).sorted().joined(separator: ","))]" }.joined(separator: ", "))")
        let app = try await buildApplication(configuration: configuration, source: source, eventSink: log, eventTail: log,
                                             prometheus: prometheus, logger: logger)
        try await app.runService()
    }
}

/// Serve's keys from the keys file or the environment; the secrets themselves never pass through argv.
enum ServeKeysLoader {
    static func load(file: String?, environment: [String: String]) throws -> AccessKeys {
        if let path = file ?? environment["DUET_KEYS_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            let url = URL(fileURLWithPath: path)
            let data: Data
            do { data = try Data(contentsOf: url) } catch {
                throw ValidationError("cannot read the keys file \(path): \(error.localizedDescription)")
            }
            do { return try AccessKeys.parse(data, origin: path) } catch let error as AccessKeysError { throw ValidationError(error.description) }
        }
        var keys: [AccessKey] = []
        for (variable, roles) in [("DUET_API_KEY", Set(AccessRole.allCases)), ("DUET_READ_KEY", [.read])] {
            guard let secret = environment[variable], !secret.isEmpty else { continue }
            guard secret.utf8.count >= 16 else { throw ValidationError("$\(variable) is shorter than 16 bytes; `duet key` makes a strong one") }
            keys.append(AccessKey(name: variable.lowercased(), secret: secret, roles: roles))
        }
        return AccessKeys(keys: keys)
    }
}

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Make a new API key for `duet serve`: prints the secret once, and the keys-file entry that holds only its hash."
    )
    @Option(help: "The key's name, shown in logs and errors (1–64 visible ASCII characters).") var name: String
    @Option(help: "Comma-separated roles: read, ingest, metrics.") var roles: String = "read"
    @Option(help: "Requests per second the key may make (token bucket); none means unlimited.") var rate: Double?
    @Option(help: "Burst size of the bucket (default: one second of --rate, at least 1).") var burst: Double?

    func run() throws {
        let secret = Secrets.randomHex(bytes: 32)
        struct Entry: Encodable {
            var name: String
            var roles: [String]
            var sha256: String
            var rate: RateLimit?
        }
        let roleList = roles.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let rateLimit = rate.map { RateLimit(perSecond: $0, burst: burst ?? max(1, $0.rounded(.up))) }
        let entry = Entry(name: name, roles: roleList, sha256: Secrets.sha256Hex(secret), rate: rateLimit)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = try encoder.encode(entry)
        // The same checks `duet serve` makes, so a bad entry fails here and not at deploy time.
        do { _ = try AccessKeys.parse(Data(#"{"keys": ["#.utf8) + json + Data("]}".utf8), origin: "this key") } catch let error as AccessKeysError {
            throw ValidationError(error.description)
        }
        print("secret (hand it to the client; it is stored nowhere): \(secret)")
        print("entry for the keys file:")
        print(String(decoding: json, as: UTF8.self))
    }
}
