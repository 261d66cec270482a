public import DuetStore
import DuetCore
import Foundation
import Logging
import PostgresNIO

/// The storage backends the shared store suite runs against: SQLite always, PostgreSQL when
/// `DUET_TEST_POSTGRES_URL` names a server (CI starts one; see scripts/start-postgres.sh).
public enum StoreBackend: String, Sendable, CaseIterable, CustomStringConvertible {
    case sqlite, postgres

    public var description: String { rawValue }

    public static var postgresURL: String? {
        ProcessInfo.processInfo.environment["DUET_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public static var enabled: [StoreBackend] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }
}

/// A fresh event log and registry on `backend` (a new SQLite folder, or a new PostgreSQL database),
/// plus a way to open the registry read-only as Serve does.
public struct TestStores: Sendable {
    public let eventLog: any EventLog
    public let registry: any Registry
    public let openReadOnly: @Sendable () async throws -> any Registry
}

public func withStores<T>(_ backend: StoreBackend, _ body: (TestStores) async throws -> T) async throws -> T {
    switch backend {
    case .sqlite:
        return try await withScratchFolder { folder in
            let registryPath = folder.appendingPathComponent("registry.sqlite").path
            let stores = TestStores(eventLog: try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path),
                                    registry: try SQLiteRegistry(path: registryPath),
                                    openReadOnly: { try SQLiteRegistry(path: registryPath, readOnly: true) })
            return try await body(stores)
        }
    case .postgres:
        guard let url = StoreBackend.postgresURL else { throw DuetError.refused("DUET_TEST_POSTGRES_URL is not set") }
        let name = "duet_test_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try PostgresDatabase(url: url)
        let adminTask = Task { await admin.run() }
        defer { adminTask.cancel() }
        try await admin.client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
        var components = URLComponents(string: url)!
        components.path = "/\(name)"
        let database = try PostgresDatabase(url: components.string!)
        let task = Task { await database.run() }
        defer { task.cancel() }
        let stores = TestStores(eventLog: try await PostgresEventLog(database: database),
                                registry: try await PostgresRegistry(database: database),
                                openReadOnly: { try await PostgresRegistry(database: database, readOnly: true) })
        return try await body(stores)
    }
}
