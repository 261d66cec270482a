#if Postgres
import DuetCore
import Foundation
public import Logging
public import PostgresNIO

/// One PostgreSQL database shared by the registry and the event log of several machines.
/// `run()` drives the connection pool and must be running (as a Service, or in a task) while in use.
public final class PostgresDatabase: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    public let url: String
    private let connectionCheck: PostgresConnection.Configuration
    public static let connectTimeout: Duration = .seconds(5)
    /// Long enough for the Lab's largest statement (freezing a snapshot of millions of events).
    public static let statementTimeout: Duration = .seconds(300)

    /// Parses `postgres://user:password@host:port/database?sslmode=…&sslrootcert=…`, with libpq's
    /// meaning of `sslmode` (see `PostgresTLSMode`).
    public init(url: String, logger: Logger = Logger(label: "duet-postgres")) throws {
        guard let components = URLComponents(string: url), components.scheme == "postgres" || components.scheme == "postgresql",
              let host = components.host, !host.isEmpty else {
            throw DuetError.invalidValue(field: "--registry", reason: "'\(Self.redact(url))' is not a postgres://user:password@host:port/database URL")
        }
        let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let (mode, tls) = try Self.tls(components.queryItems ?? [])
        var configuration = PostgresClient.Configuration(host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                                                         password: components.password, database: database.isEmpty ? nil : database,
                                                         tls: tls.map { mode == .prefer ? .prefer($0) : .require($0) } ?? .disable)
        connectionCheck = (PostgresConnection.Configuration(host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                                                            password: components.password, database: database.isEmpty ? nil : database,
                                                            tls: try tls.map { mode == .prefer ? .prefer(try NIOSSLContext(configuration: $0)) : .require(try NIOSSLContext(configuration: $0)) } ?? .disable))
        // No call waits on the server without bound: a connection attempt gives up after 5 s and
        // the server cancels any statement running longer than `statementTimeout`. (A server that
        // stops answering altogether is bounded by the callers' own deadlines, e.g. Serve's.)
        configuration.options.connectTimeout = Self.connectTimeout
        configuration.options.additionalStartupParameters = [("statement_timeout", "\(Self.statementTimeout.components.seconds)s")]
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
        self.url = url
    }

    public func run() async { await client.run() }

    /// Opens one connection directly, as the pool would. The pool retries a failing connection
    /// until its circuit breaker trips (a minute later, with a generic error); this says at once
    /// what the server or the TLS handshake refused: a wrong password, CA or host name.
    public func checkConnection() async throws {
        var configuration = connectionCheck
        configuration.options.connectTimeout = .init(Self.connectTimeout)
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try? await connection.close()
        } catch {
            let described = Self.describe(error)
            let hint = described.contains("SSL") || described.contains("Hostname") ? " (TLS: check sslrootcert, and that the certificate names this host)" : ""
            throw DuetError.io(path: redactedURL, reason: "cannot connect: \(described)\(hint)")
        }
    }

    /// The driver's own words: PSQLError's description hides them behind a generic sentence.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if error.code == .sslUnsupported { return "the server does not offer TLS, which this sslmode requires" }
            var parts: [String] = [String(describing: error.code)]
            if let message = error.serverInfo?[.message] { parts.append(message) }
            if let underlying = error.underlying { parts.append(String(describing: underlying)) }
            return parts.joined(separator: ": ")
        }
        return String(describing: error)
    }

    /// The URL without its password, for messages and logs.
    public var redactedURL: String { Self.redact(url) }

    static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
    }

    /// The TLS the URL's `sslmode` and `sslrootcert` ask for. Any other parameter is refused by
    /// name rather than ignored, so a misspelt `sslmode` never silently means no TLS.
    static func tls(_ items: [URLQueryItem]) throws -> (PostgresTLSMode, TLSConfiguration?) {
        var mode = PostgresTLSMode.prefer, rootCertificate: String?
        for item in items {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let parsed = PostgresTLSMode(rawValue: value) else {
                    throw DuetError.invalidValue(field: "sslmode", reason: "'\(item.value ?? "")' is not one of \(PostgresTLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                mode = parsed
            case "sslrootcert":
                guard let value = item.value, !value.isEmpty else { throw DuetError.invalidValue(field: "sslrootcert", reason: "names no file") }
                rootCertificate = value
            default:
                throw DuetError.invalidValue(field: "PostgreSQL URL", reason: "unknown parameter '\(item.name)'; Duet reads sslmode and sslrootcert")
            }
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch mode {
        case .disable: return (.disable, nil)
        case .prefer, .require: tls.certificateVerification = .none
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let rootCertificate {
            do { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(rootCertificate)) } catch {
                throw DuetError.invalidValue(field: "sslrootcert", reason: "cannot read CA certificates from \(rootCertificate): \(error)")
            }
        } else if mode == .verifyCA || mode == .verifyFull {
            tls.trustRoots = .default
        }
        return (mode, tls)
    }

    /// A transaction whose failures surface as the error the body threw (a DuetError naming the
    /// problem), not wrapped in the driver's transaction error.
    public func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> sending T) async throws -> sending T {
        do {
            return try await client.withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError { throw inner }
            throw error
        }
    }

    /// Migrations run once each, in order, each in a transaction, serialised across machines by an
    /// advisory lock. A migration that has shipped is never edited.
    public func migrate(_ name: String, _ statements: [String]) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(4242)", logger: logger)
            try await connection.query("CREATE TABLE IF NOT EXISTS duet_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)", logger: logger)
            let rows = try await connection.query("SELECT name FROM duet_migrations WHERE name = \(name)", logger: logger)
            for try await _ in rows { return }
            for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
            try await connection.query("INSERT INTO duet_migrations (name, applied_at) VALUES (\(name), \(Date().epochMillis))", logger: logger)
        }
    }
}

/// libpq's `sslmode`: `prefer` (the default) encrypts when the server offers TLS; `require`
/// insists on it without checking the certificate; `verify-ca` checks the chain against
/// `sslrootcert` (or the system's roots); `verify-full` also checks the server's name.
public enum PostgresTLSMode: String, CaseIterable, Sendable {
    case disable, prefer, require
    case verifyCA = "verify-ca"
    case verifyFull = "verify-full"
}

/// A query built piece by piece with numbered parameters, for filters that vary.
struct DynamicQuery {
    var sql: String
    var binds = PostgresBindings()
    private var count = 0

    init(_ sql: String) { self.sql = sql }

    /// Appends `$n` bound to `value` and returns the placeholder.
    mutating func bind<T: PostgresThrowingDynamicTypeEncodable>(_ value: T) throws -> String {
        count += 1
        try binds.append(value)
        return "$\(count)"
    }

    var query: PostgresQuery { PostgresQuery(unsafeSQL: sql, binds: binds) }
}
#endif
