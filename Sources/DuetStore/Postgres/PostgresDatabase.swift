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
    public static let connectTimeout: Duration = .seconds(5)
    /// Long enough for the Lab's largest statement (freezing a snapshot of millions of events).
    public static let statementTimeout: Duration = .seconds(300)

    /// Parses `postgres://user:password@host:port/database`.
    public init(url: String, logger: Logger = Logger(label: "duet-postgres")) throws {
        guard let components = URLComponents(string: url), components.scheme == "postgres" || components.scheme == "postgresql",
              let host = components.host, !host.isEmpty else {
            throw DuetError.invalidValue(field: "--registry", reason: "'\(url)' is not a postgres://user:password@host:port/database URL")
        }
        let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        var configuration = PostgresClient.Configuration(host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
                                                         password: components.password, database: database.isEmpty ? nil : database,
                                                         tls: .disable)
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

    /// The URL without its password, for messages and logs.
    public var redactedURL: String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
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
