#if Postgres
public import DuetCore
import Foundation
import Logging
import PostgresNIO

/// The schema on PostgreSQL belongs to the Lab: it creates and migrates it. Serve only checks that
/// the schema is exactly one it knows, and refuses to start otherwise.
public enum PostgresSchema {
    /// Every migration this build knows, in the order they apply.
    public static let migrations = [PostgresRegistry.migrationName, PostgresEventLog.migrationName, PostgresEventLog.batchesMigrationName,
                                     PostgresRegistry.reviewMigrationName, PostgresRegistry.metricOwnersMigrationName,
                                     PostgresRegistry.lanesMigrationName, PostgresRegistry.cutoverMigrationName,
                                     PostgresEventLog.shadowsMigrationName, PostgresRegistry.indexesMigrationName]

    /// Creates or brings up to date the registry and event log tables (the Lab's job).
    public static func migrate(_ database: PostgresDatabase) async throws {
        try await PostgresRegistry.migrate(database)
        try await PostgresEventLog.migrate(database)
    }

    /// Throws a refusal naming the command to run unless every known migration, and no other, is applied.
    public static func requireCurrent(_ database: PostgresDatabase) async throws {
        let fix = "run `duet lab migrate --registry <the Lab's URL>` with the Lab's credentials"
        var applied: [String] = []
        do {
            let rows = try await database.client.query("SELECT name FROM duet_migrations", logger: database.logger)
            for try await name in rows.decode(String.self) { applied.append(name) }
        } catch {
            let reason = (error as? PSQLError)?.serverInfo?[.message] ?? String(describing: error)
            throw DuetError.refused("cannot read the registry schema at \(database.redactedURL) (\(reason)); Serve never creates it: \(fix)")
        }
        let missing = migrations.filter { !applied.contains($0) }
        let unknown = applied.filter { !migrations.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw DuetError.refused("the registry schema at \(database.redactedURL) has migrations this build does not know (\(unknown.joined(separator: ", "))); upgrade Serve to the Lab's version")
        }
        if !missing.isEmpty {
            throw DuetError.refused("the registry schema at \(database.redactedURL) lacks \(missing.joined(separator: ", ")); Serve never migrates: \(fix)")
        }
    }
}

/// The database role Serve connects under: it may read the tables Serve polls and insert events and
/// exposures, nothing else. The Lab prints or applies these grants (`duet lab grants`).
public enum PostgresServeRole {
    /// Tables Serve reads: what to serve, and the events' tail (what users just consumed).
    public static let readable = ["duet_migrations", "serving_state", "production_history", "experiments", "events", "ingest_batches", "index_history"]
    /// Tables Serve appends to; of exposures it reads back only the sequence numbers its inserts return.
    public static let appendable = ["events", "exposures", "shadow_exposures"]
    /// Tables Serve inserts into without a sequence: the keys of batches it stored.
    public static let keyed = ["ingest_batches"]

    public static func statements(role: String, password: String?) throws -> [String] {
        guard let first = role.first, first.isLetter || first == "_", role.count <= 63,
              role.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }), role == role.lowercased() else {
            throw DuetError.invalidValue(field: "role", reason: "'\(role)' must be a lowercase SQL name: letters, digits and _, at most 63, not starting with a digit")
        }
        var statements = [
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(role)') THEN CREATE ROLE \(role) LOGIN; END IF; END $$",
        ]
        if let password {
            statements.append("ALTER ROLE \(role) LOGIN PASSWORD '\(password.replacingOccurrences(of: "'", with: "''"))'")
        }
        statements += [
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \(role)",
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM \(role)",
            "GRANT USAGE ON SCHEMA public TO \(role)",
            "GRANT SELECT ON \(readable.joined(separator: ", ")) TO \(role)",
            "GRANT INSERT ON \(appendable.joined(separator: ", ")) TO \(role)",
            "GRANT SELECT (seq) ON \(appendable.joined(separator: ", ")) TO \(role)",
            "GRANT USAGE ON SEQUENCE \(appendable.map { "\($0)_seq_seq" }.joined(separator: ", ")) TO \(role)",
            // Batch keys: Serve reads whether a key was stored and adds new ones, in the batch's transaction.
            "GRANT INSERT ON \(keyed.joined(separator: ", ")) TO \(role)",
        ]
        return statements
    }

    /// Applies the grants in one transaction on the Lab's connection (which must be allowed to create roles).
    public static func apply(role: String, password: String?, on database: PostgresDatabase) async throws {
        let statements = try statements(role: role, password: password)
        try await database.transaction { connection in
            for statement in statements { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: database.logger) }
        }
    }
}
#endif
