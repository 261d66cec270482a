public import DuetStore
public import DuetCore
import DuetTestSupport
import Foundation
import GRDB
import Logging
#if Postgres
import PostgresNIO
#endif

/// The storage backends the shared store suite runs against: SQLite always, PostgreSQL when
/// `DUET_TEST_POSTGRES_URL` names a server (CI starts one; see scripts/start-postgres.sh) and the
/// build has the backend (`--traits Postgres`; a test fails when the URL is set without it).
public enum StoreBackend: String, Sendable, CaseIterable, CustomStringConvertible {
    case sqlite, postgres

    public var description: String { rawValue }

    public static var postgresURL: String? {
        ProcessInfo.processInfo.environment["DUET_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var enabled: [StoreBackend] { postgresURL == nil || !PostgresSupport.isBuiltIn ? [.sqlite] : [.sqlite, .postgres] }
}

/// Serve's handles as `duet serve` opens them, and a way to run raw SQL on Serve's own connections,
/// past every Swift-level guard, so a test can prove the database itself refuses.
public struct ServeHandles: Sendable {
    public let source: any ServingSource
    public let sink: any EventSink
    /// Runs SQL on the connection Serve reads the registry through.
    public let executeOnRegistryConnection: @Sendable (String) async throws -> Void
    /// Runs SQL on the connection Serve appends events through.
    public let executeOnEventConnection: @Sendable (String) async throws -> Void
}

/// A fresh event log and registry on `backend` (a new SQLite folder, or a new PostgreSQL database),
/// the Lab's raw SQL, and Serve's handles (on PostgreSQL under a role set up by `PostgresServeRole`).
public struct TestStores: Sendable {
    public let eventLog: any EventLog
    public let registry: any LabRegistry
    public let executeAsLab: @Sendable (String) async throws -> Void
    /// Raw SQL on the Lab's registry connection, past every Swift-level rule.
    public let executeOnLabRegistry: @Sendable (String) async throws -> Void
    public let serve: ServeHandles
}

public func withStores<T>(_ backend: StoreBackend, _ body: (TestStores) async throws -> T) async throws -> T {
    switch backend {
    case .sqlite:
        return try await withScratchFolder { folder in
            let registryPath = folder.appendingPathComponent("registry.sqlite").path
            let eventsPath = folder.appendingPathComponent("events.sqlite").path
            let eventLog = try SQLiteEventLog(path: eventsPath)
            let registry = try SQLiteRegistry(path: registryPath)
            let source = try SQLiteServingSource(path: registryPath)
            let serveLog = try SQLiteEventLog(path: eventsPath)
            let stores = TestStores(
                eventLog: eventLog, registry: registry,
                executeAsLab: { sql in try await DatabaseQueue(path: eventsPath).write { try $0.execute(sql: sql) } },
                executeOnLabRegistry: { sql in try await DatabaseQueue(path: registryPath).write { try $0.execute(sql: sql) } },
                serve: ServeHandles(source: source, sink: serveLog, executeOnRegistryConnection: { try await source.executeOnServingConnection($0) },
                                    executeOnEventConnection: { try await serveLog.executeOnConnection($0) }))
            return try await body(stores)
        }
    case .postgres:
        #if Postgres
        guard let url = StoreBackend.postgresURL else { throw DuetError.refused("DUET_TEST_POSTGRES_URL is not set") }
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let name = "duet_test_\(suffix)"
        let admin = try PostgresDatabase(url: url)
        let adminTask = Task { await admin.run() }
        defer { adminTask.cancel() }
        try await admin.client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        var components = URLComponents(string: url)!
        components.path = "/\(name)"
        let database = try PostgresDatabase(url: components.string!)
        let task = Task { await database.run() }
        defer { task.cancel() }
        let eventLog = try await PostgresEventLog(database: database)
        let registry = try await PostgresRegistry(database: database)
        // Serve's own role, as `duet lab grants --apply` sets it up; the test server trusts loopback logins.
        let role = "duet_serve_\(suffix)"
        try await PostgresServeRole.apply(role: role, password: nil, on: database)
        components.user = role
        components.password = nil
        let serveDatabase = try PostgresDatabase(url: components.string!)
        let serveTask = Task { await serveDatabase.run() }
        defer { serveTask.cancel() }
        let source = try await PostgresServingSource(database: serveDatabase)
        let sink = try await PostgresEventLog(servingDatabase: serveDatabase)
        let raw: @Sendable (DuetStore.PostgresDatabase, String) async throws -> Void = { database, sql in
            try await database.client.query(PostgresQuery(unsafeSQL: sql), logger: database.logger)
        }
        let stores = TestStores(
            eventLog: eventLog, registry: registry, executeAsLab: { try await raw(database, $0) }, executeOnLabRegistry: { try await raw(database, $0) },
            serve: ServeHandles(source: source, sink: sink, executeOnRegistryConnection: { try await source.executeOnServingConnection($0) },
                                executeOnEventConnection: { try await raw(serveDatabase, $0) }))
        return try await body(stores)
        #else
        throw PostgresSupport.missing(for: StoreBackend.postgresURL ?? "postgres://")
        #endif
    }
}

/// What the database said when it refused a statement: SQLite's message, or PostgreSQL's SQLSTATE and message.
public func databaseRefusal(_ error: any Error) -> String {
    if let error = error as? DatabaseError { return "sqlite \(error.resultCode): \(error.message ?? "")" }
    #if Postgres
    if let error = error as? PSQLError {
        return "postgres \(error.serverInfo?[.sqlState] ?? "?"): \(error.serverInfo?[.message] ?? String(reflecting: error))"
    }
    #endif
    return String(reflecting: error)
}

/// The registry calls as the older tests spell them; production code promotes through `Lab.promote`.
extension LabRegistry {
    @discardableResult
    public func promote(_ model: String, actor: String, reason: String, evidence: PromotionEvidence,
                        expectedGeneration: Int?) async throws -> ProductionChange {
        try await promote(RegistryRules.PromotionRequest(model: model, actor: actor, reason: reason, evidence: evidence,
                                                         expectedGeneration: expectedGeneration))
    }

    @discardableResult
    public func rollback(to target: String?, actor: String, reason: String, expectedGeneration: Int?) async throws -> ProductionChange {
        try await rollback(RegistryRules.RollbackRequest(target: target, actor: actor, reason: reason, expectedGeneration: expectedGeneration))
    }
}
