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

            Settings: every flag also comes from a DUET_* environment variable (--max-body-bytes from \
            DUET_MAX_BODY_BYTES) and from the configuration file's "serve" section (--config or \
            $DUET_CONFIG); a flag beats the environment, which beats the file. `duet config print` \
            shows the effective settings and where each came from.
            Routes: GET /v1/users/{user}/recommendations, GET /v1/items/{item}/similar, POST /v1/events,
            GET /livez, /readyz, /metrics, /openapi.json.
            """
    )
    @OptionGroup var home: HomeOptions
    @Option(help: ArgumentHelp("Serve's own PostgreSQL URL, under the role `duet lab grants` sets up.",
                               discussion: "Falls back to $DUET_SERVE_REGISTRY, then to --registry.", valueName: "url"))
    var serveRegistry: String?
    @Option(help: "Address to listen on (default: 127.0.0.1).") var host: String?
    @Option(help: "Port (default: 8080).") var port: Int?
    @Option(help: "Seconds between registry polls (default: 1).") var pollInterval: Double?
    @Option(help: "Largest request body accepted, in bytes (default: 4 MiB).") var maxBodyBytes: Int?
    @Option(help: "Event batches stored at once; past it POST /v1/events answers 503 with Retry-After (default: 32).") var maxIngestInFlight: Int?
    @Option(help: "Body bytes of event batches taken in at once (by Content-Length); past it, 503 with Retry-After (default: 32 MiB).") var maxIngestBytes: Int?
    @Option(help: "Seconds an event append may take before the client gets 503 with Retry-After (default: 3).") var ingestTimeout: Double?
    @Option(help: "Hours of the event log read at start for what users just consumed; the tail is followed after (default: 168).") var recentWindow: Double?
    @Option(help: ArgumentHelp("JSON file of API keys, their roles and rate limits.",
                               discussion: "Without it, $DUET_API_KEY and $DUET_READ_KEY; with none of them every route is open.", valueName: "file"))
    var keysFile: String?
    @Option(help: "Users with fewer training interactions get the popularity list (default: 1).") var minHistory: Int?
    @Option(help: "Log lines as logfmt or json (default: logfmt).") var logFormat: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (default: info).") var logLevel: String?
    @Option(help: "Share of requests given one access log line each, 0–1 (default: 0).") var accessLogSample: Double?
    @Option(help: ArgumentHelp(
        "Most item rows an exact recommendation may read before HNSW answers instead (default: 20000).",
        discussion: "Rows are read longest first and the scan stops once no row left can make the list, which for factor models is usually a few per cent of the catalogue; catalogues up to this size are always exact."))
    var annThreshold: Int?
    @Option(help: ArgumentHelp(
        "Most MiB each factor bundle's precomputed user lists may take; 0 turns them off (default: 64).",
        discussion: "When a bundle loads, every known user's exact list (40 items, 8 bytes each) is computed once; a request then drops only what it excludes and what the user just consumed, and scans when fewer than n items remain. A bundle whose users need more than this is scanned per request."))
    var precomputedListsMb: Int?
    @Option(help: "HNSW beam width for recommendations the exact scan hands over (at least n is used; default: \(ServeSettings.defaultRecommendationBeam)); `duet bench recommend --ef` reports its recall.")
    var ef: Int?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings = home.settings
        var configuration = ServeSettings(home: home.resolved)
        configuration.host = try settings.required(DuetSettings.host, flag: host)
        configuration.port = try settings.required(DuetSettings.port, flag: port)
        guard (0...65_535).contains(configuration.port) else { throw ValidationError("--port must be 0–65535") }
        let pollInterval = try settings.required(DuetSettings.pollInterval, flag: pollInterval)
        guard pollInterval > 0, pollInterval <= 3_600 else { throw ValidationError("--poll-interval must be in (0, 3600] seconds") }
        let maxBodyBytes = try settings.required(DuetSettings.maxBodyBytes, flag: maxBodyBytes)
        guard maxBodyBytes >= 1_024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        configuration.pollInterval = .milliseconds(Int(pollInterval * 1_000))
        configuration.maxBodyBytes = maxBodyBytes
        let maxIngestInFlight = try settings.required(DuetSettings.maxIngestInFlight, flag: maxIngestInFlight)
        guard (1...10_000).contains(maxIngestInFlight) else { throw ValidationError("--max-ingest-in-flight must be 1–10000") }
        let ingestTimeout = try settings.required(DuetSettings.ingestTimeout, flag: ingestTimeout)
        guard ingestTimeout >= 0.1, ingestTimeout <= 600 else { throw ValidationError("--ingest-timeout must be 0.1–600 seconds") }
        configuration.maxIngestInFlight = maxIngestInFlight
        let maxIngestBytes = try settings.required(DuetSettings.maxIngestBytes, flag: maxIngestBytes)
        guard maxIngestBytes >= maxBodyBytes else { throw ValidationError("--max-ingest-bytes must be at least --max-body-bytes (\(maxBodyBytes))") }
        configuration.maxIngestBytes = maxIngestBytes
        configuration.ingestTimeout = .milliseconds(Int(ingestTimeout * 1_000))
        let recentWindow = try settings.required(DuetSettings.recentWindow, flag: recentWindow)
        guard recentWindow >= 0, recentWindow <= 24 * 366 else { throw ValidationError("--recent-window must be 0–8784 hours") }
        configuration.recentWindow = .seconds(Int(recentWindow * 3_600))
        configuration.access = try ServeKeysLoader.load(file: settings.text(DuetSettings.keysFile, flag: keysFile)?.text, environment: environment)
        configuration.minimumHistory = try settings.required(DuetSettings.minHistory, flag: minHistory)
        let annThreshold = try settings.required(DuetSettings.annThreshold, flag: annThreshold)
        let ef = try settings.required(DuetSettings.ef, flag: ef)
        guard annThreshold >= 0 else { throw ValidationError("--ann-threshold must be 0 or more") }
        guard (1...10_000).contains(ef) else { throw ValidationError("--ef must be 1–10000") }
        configuration.annThreshold = annThreshold
        let precomputedListsMB = try settings.required(DuetSettings.precomputedListsMB, flag: precomputedListsMb)
        guard (0...1 << 20).contains(precomputedListsMB) else { throw ValidationError("--precomputed-lists-mb must be 0–1048576") }
        configuration.precomputedListsMaxBytes = precomputedListsMB << 20
        configuration.recommendationBeam = ef
        let accessLogSample = try settings.required(DuetSettings.accessLogSample, flag: accessLogSample)
        guard (0...1).contains(accessLogSample) else { throw ValidationError("--access-log-sample must be 0–1") }
        configuration.accessLogSample = accessLogSample

        let duetHome = configuration.home
        guard home.registryURL != nil || settings.text(DuetSettings.serveRegistry, flag: serveRegistry) != nil || FileManager.default.fileExists(atPath: duetHome.registryPath.path) else {
            throw DuetError.notFound(kind: "registry", id: "\(duetHome.registryPath.path) (create it with `duet lab train --register` and promote a model)")
        }
        try FileManager.default.createDirectory(at: duetHome.root, withIntermediateDirectories: true)
        let prometheus = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory.serve(registry: prometheus))
        let (levelText, _, levelOrigin) = settings.text(DuetSettings.logLevel, flag: logLevel)!
        guard let level = Logger.Level(rawValue: levelText) else {
            throw ValidationError("\(levelOrigin == "default" ? "log level" : levelOrigin) '\(levelText)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let (formatText, _, formatOrigin) = settings.text(DuetSettings.logFormat, flag: logFormat)!
        guard let format = LogFormat(rawValue: formatText) else {
            throw ValidationError("\(formatOrigin) '\(formatText)' is not one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let logger = Logger(label: "duet-serve") { ServeLogHandler(label: $0, logLevel: level, format: format) }
        let serveURL = settings.text(DuetSettings.serveRegistry, flag: serveRegistry)?.text
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
