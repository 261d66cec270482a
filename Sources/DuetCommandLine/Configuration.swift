import DuetCore
import Foundation
import Synchronization

/// Where a setting's value came from. Precedence, highest first: flag, DUET_* environment variable,
/// configuration file, built-in default.
package enum SettingSource: String, Codable, Sendable {
    case flag, environment, file, `default`
}

/// One setting every way it can be given: a key in the configuration file (`serve.port`), an
/// environment variable, a flag. Secrets are redacted wherever settings are shown.
package struct SettingSpec: Sendable, Hashable {
    package let key: String
    package let environment: String?
    package let flag: String?
    package let defaultText: String?
    package let secret: Bool
    package let help: String

    init(_ key: String, environment: String?, flag: String?, default defaultText: String? = nil, secret: Bool = false, help: String) {
        self.key = key
        self.environment = environment
        self.flag = flag
        self.defaultText = defaultText
        self.secret = secret
        self.help = help
    }
}

/// Every setting Duet reads, in the order `duet config print` lists them.
package enum DuetSettings {
    package static let home = SettingSpec("home", environment: "DUET_HOME", flag: "--home", default: "duet-home", help: "The deployment's folder")
    package static let registry = SettingSpec("registry", environment: "DUET_REGISTRY", flag: "--registry", secret: true,
                                              help: "PostgreSQL URL of the registry and event log (default: the home's SQLite files)")
    package static let serveRegistry = SettingSpec("serve.serveRegistry", environment: "DUET_SERVE_REGISTRY", flag: "--serve-registry", secret: true,
                                                   help: "Serve's own PostgreSQL URL, under the role `duet lab grants` sets up (default: registry)")
    package static let host = SettingSpec("serve.host", environment: "DUET_HOST", flag: "--host", default: "127.0.0.1", help: "Address to listen on")
    package static let port = SettingSpec("serve.port", environment: "DUET_PORT", flag: "--port", default: "8080", help: "Port")
    package static let pollInterval = SettingSpec("serve.pollInterval", environment: "DUET_POLL_INTERVAL", flag: "--poll-interval", default: "1",
                                                  help: "Seconds between registry polls")
    package static let maxBodyBytes = SettingSpec("serve.maxBodyBytes", environment: "DUET_MAX_BODY_BYTES", flag: "--max-body-bytes", default: "\(4 << 20)",
                                                  help: "Largest request body accepted, in bytes")
    package static let maxIngestInFlight = SettingSpec("serve.maxIngestInFlight", environment: "DUET_MAX_INGEST_IN_FLIGHT", flag: "--max-ingest-in-flight",
                                                       default: "32", help: "Event batches stored at once before 503")
    package static let maxIngestBytes = SettingSpec("serve.maxIngestBytes", environment: "DUET_MAX_INGEST_BYTES", flag: "--max-ingest-bytes",
                                                    default: "\(32 << 20)", help: "Body bytes of event batches taken in at once before 503")
    package static let ingestTimeout = SettingSpec("serve.ingestTimeout", environment: "DUET_INGEST_TIMEOUT", flag: "--ingest-timeout", default: "3",
                                                   help: "Seconds an event append may take before 503")
    package static let recentWindow = SettingSpec("serve.recentWindow", environment: "DUET_RECENT_WINDOW", flag: "--recent-window", default: "168",
                                                  help: "Hours of the event log read at start for what users just consumed")
    package static let keysFile = SettingSpec("serve.keysFile", environment: "DUET_KEYS_FILE", flag: "--keys-file",
                                              help: "JSON file of API keys, their roles and rate limits")
    package static let minHistory = SettingSpec("serve.minHistory", environment: "DUET_MIN_HISTORY", flag: "--min-history", default: "1",
                                                help: "Users with fewer training interactions get the popularity list")
    package static let logFormat = SettingSpec("serve.logFormat", environment: "DUET_LOG_FORMAT", flag: "--log-format", default: "logfmt",
                                               help: "logfmt or json")
    package static let logLevel = SettingSpec("serve.logLevel", environment: "DUET_LOG_LEVEL", flag: "--log-level", default: "info",
                                              help: "trace, debug, info, notice, warning, error or critical")
    package static let accessLogSample = SettingSpec("serve.accessLogSample", environment: "DUET_ACCESS_LOG_SAMPLE", flag: "--access-log-sample",
                                                     default: "0", help: "Share of requests given an access log line (0–1)")
    package static let annThreshold = SettingSpec("serve.annThreshold", environment: "DUET_ANN_THRESHOLD", flag: "--ann-threshold", default: "20000",
                                                  help: "Most item rows an exact recommendation may read before HNSW answers")
    package static let precomputedListsMB = SettingSpec("serve.precomputedListsMB", environment: "DUET_PRECOMPUTED_LISTS_MB", flag: "--precomputed-lists-mb",
                                                        default: "64", help: "Most MiB of precomputed user lists per factor bundle (0: none)")
    package static let ef = SettingSpec("serve.ef", environment: "DUET_EF", flag: "--ef", default: "32", help: "HNSW beam width for recommendations")
    /// Secrets that only the environment may give: a flag would show in `ps`, a shared file would spread them.
    package static let apiKey = SettingSpec("serve.apiKey", environment: "DUET_API_KEY", flag: nil, secret: true,
                                            help: "An API key with every role (environment only; or use a keys file)")
    package static let readKey = SettingSpec("serve.readKey", environment: "DUET_READ_KEY", flag: nil, secret: true,
                                             help: "An API key with the read role only (environment only)")

    package static let all = [home, registry, serveRegistry, host, port, pollInterval, maxBodyBytes, maxIngestInFlight, maxIngestBytes, ingestTimeout,
                              recentWindow, keysFile, minHistory, logFormat, logLevel, accessLogSample, annThreshold, precomputedListsMB, ef, apiKey, readKey]
}

/// A configuration file: JSON with top-level `home` and `registry` and a `serve` object, e.g.
/// `{"home": "/var/lib/duet", "serve": {"port": 8080, "logFormat": "json"}}`. Unknown keys are
/// refused by name, so a typo never silently falls back to a default.
package struct ConfigurationFile: Sendable {
    package let path: String?
    package let values: [String: String]

    package static let none = ConfigurationFile(path: nil, values: [:])

    private enum Scalar: Decodable {
        case text(String), number(Double), flag(Bool), table([String: Scalar]), null

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { self = .null }
            else if let value = try? container.decode(Bool.self) { self = .flag(value) }
            else if let value = try? container.decode(Double.self) { self = .number(value) }
            else if let value = try? container.decode(String.self) { self = .text(value) }
            else if let value = try? container.decode([String: Scalar].self) { self = .table(value) }
            else { throw DecodingError.dataCorruptedError(in: container, debugDescription: "arrays are not settings") }
        }
    }

    package static func load(path: String) throws -> ConfigurationFile {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DuetError.io(path: path, reason: "cannot read the configuration file: \(error.localizedDescription)")
        }
        let root: [String: Scalar]
        do { root = try JSONDecoder().decode([String: Scalar].self, from: data) } catch {
            throw DuetError.invalidValue(field: "configuration file \(path)", reason: "is not a JSON object of settings: \(DecodingProblem.describe(error))")
        }
        var values: [String: String] = [:]
        func flatten(_ table: [String: Scalar], prefix: String) throws {
            for (name, value) in table {
                let key = prefix + name
                switch value {
                case let .table(inner):
                    guard prefix.isEmpty, name == "serve" else {
                        throw DuetError.invalidValue(field: "configuration file \(path)", reason: "'\(key)' is not a section; the only section is 'serve'")
                    }
                    try flatten(inner, prefix: "serve.")
                case .null: continue
                case let .text(text): values[key] = text
                case let .flag(flag): values[key] = flag ? "true" : "false"
                case let .number(number):
                    values[key] = number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
                }
            }
        }
        try flatten(root, prefix: "")
        let known = Set(DuetSettings.all.filter { $0.flag != nil }.map(\.key))
        if let unknown = values.keys.sorted().first(where: { !known.contains($0) }) {
            let secretOnly = DuetSettings.all.contains { $0.key == unknown && $0.flag == nil }
            throw DuetError.invalidValue(field: "configuration file \(path)",
                                         reason: secretOnly ? "'\(unknown)' is a secret and comes only from the environment"
                                             : "unknown setting '\(unknown)'; known: \(known.sorted().joined(separator: ", "))")
        }
        return ConfigurationFile(path: path, values: values)
    }

    private static let cache = Mutex<[String: ConfigurationFile]>([:])

    /// The file `--config` or $DUET_CONFIG names (none without either), read once per process.
    package static func named(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ConfigurationFile {
        guard let path = flag ?? environment["DUET_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) else { return .none }
        if let cached = cache.withLock({ $0[path] }) { return cached }
        let file = try load(path: path)
        cache.withLock { $0[path] = file }
        return file
    }
}

/// Settings resolved by precedence: flag, then environment, then file, then default.
package struct SettingsResolver: Sendable {
    package let file: ConfigurationFile
    package let environment: [String: String]

    package init(file: ConfigurationFile, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.file = file
        self.environment = environment
    }

    /// The raw text and its source, or nil when nothing, not even a default, gives it.
    package func text(_ spec: SettingSpec, flag: String? = nil) -> (text: String, source: SettingSource, origin: String)? {
        if let flag, let name = spec.flag { return (flag, .flag, name) }
        if let variable = spec.environment, let text = environment[variable], !text.isEmpty { return (text, .environment, "$" + variable) }
        if let text = file.values[spec.key], let path = file.path { return (text, .file, "\(spec.key) in \(path)") }
        return spec.defaultText.map { ($0, .default, "default") }
    }

    /// A typed value; text that does not parse is an error naming where it came from.
    package func value<T: LosslessStringConvertible>(_ spec: SettingSpec, flag: T?, as type: T.Type = T.self) throws -> T? {
        if let flag { return flag }
        guard let (text, _, origin) = text(spec) else { return nil }
        guard let value = T(text.trimmingCharacters(in: .whitespaces)) else {
            throw DuetError.invalidValue(field: origin, reason: "'\(text.prefix(64))' is not \(T.self == Int.self ? "an integer" : T.self == Double.self ? "a number" : "valid")")
        }
        return value
    }

    package func required<T: LosslessStringConvertible>(_ spec: SettingSpec, flag: T?) throws -> T {
        guard let value = try value(spec, flag: flag) else { throw DuetError.invalidValue(field: spec.key, reason: "has no value and no default") }
        return value
    }

    /// What `duet config print` shows for one setting: secrets redacted, URLs keeping all but the password.
    package static func redacted(_ text: String, secret: Bool) -> String {
        guard secret else { return text }
        if var parts = URLComponents(string: text), parts.scheme != nil, parts.host != nil {
            if parts.password != nil { parts.password = "REDACTED" }
            parts.queryItems = parts.queryItems?.map { item in
                ["password", "sslpassword"].contains(item.name.lowercased()) ? URLQueryItem(name: item.name, value: "REDACTED") : item
            }
            return parts.string ?? "REDACTED"
        }
        return "REDACTED (set)"
    }
}
