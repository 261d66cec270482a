#if Postgres
public import DuetCore
import Foundation
import Logging
import PostgresNIO

/// Similarity index artefacts and their per-name aliases on PostgreSQL: storage only, the rules are `RegistryRules`'.
extension PostgresRegistry {
    typealias IndexArtefactRow = (String, String, String, Int64)
    static let indexArtefactColumns = "id, manifest, registered_by, registered_at"

    static func indexArtefact(_ row: IndexArtefactRow) throws -> IndexArtefactRecord {
        IndexArtefactRecord(id: row.0, manifest: try JSONDecoder().decode(IndexManifest.self, from: Data(row.1.utf8)),
                            registeredBy: row.2, registeredAt: row.3)
    }

    static func indexArtefact(_ connection: PostgresConnection, _ id: String?, logger: Logger) async throws -> IndexArtefactRecord? {
        guard let id else { return nil }
        return try await first(connection, "SELECT \(unescaped: indexArtefactColumns) FROM index_artefacts WHERE id = \(id)",
                               as: IndexArtefactRow.self, logger: logger).map(indexArtefact)
    }

    typealias IndexChangeRow = (String, Int32, String, String?, String, String, String, Int64)
    static let indexChangeColumns = "name, generation, action, from_artefact, to_artefact, actor, reason, changed_at"

    static func indexChange(_ row: IndexChangeRow) -> IndexChange {
        IndexChange(name: row.0, generation: Int(row.1), action: IndexChange.Action(rawValue: row.2) ?? .publish, from: row.3, to: row.4,
                    actor: row.5, reason: row.6, changedAt: row.7)
    }

    static func indexHistory(_ connection: PostgresConnection, _ name: String?, logger: Logger) async throws -> [IndexChange] {
        let query = if let name {
            "SELECT \(unescaped: indexChangeColumns) FROM index_history WHERE name = \(name) ORDER BY generation" as PostgresQuery
        } else {
            PostgresQuery(unsafeSQL: "SELECT \(indexChangeColumns) FROM index_history ORDER BY changed_at, name, generation")
        }
        var changes: [IndexChange] = []
        for try await row in try await connection.query(query, logger: logger).decode(IndexChangeRow.self) { changes.append(indexChange(row)) }
        return changes
    }

    public func register(_ index: IndexArtefactRecord) async throws {
        let logger = self.logger
        try await write { connection in
            let exists = try await Self.first(connection, "SELECT 1 FROM index_artefacts WHERE id = \(index.id)", as: Int32.self, logger: logger) != nil
            let actor = try await Self.person(connection, index.registeredBy, logger: logger)
            let record = try RegistryRules.registerIndex(index, exists: exists, actorRegistered: actor != nil)
            let manifest = try SQLiteRegistry.encode(record.manifest)
            try await connection.query("""
                INSERT INTO index_artefacts (id, name, manifest, registered_by, registered_at)
                VALUES (\(record.id), \(record.name), \(manifest), \(record.registeredBy), \(record.registeredAt))
                """, logger: logger)
        }
    }

    public func indexArtefact(_ id: String) async throws -> IndexArtefactRecord? {
        let logger = self.logger
        return try await database.client.withConnection { try await Self.indexArtefact($0, id, logger: logger) }
    }

    public func indexArtefacts() async throws -> [IndexArtefactRecord] {
        try await collect(PostgresQuery(unsafeSQL: "SELECT \(Self.indexArtefactColumns) FROM index_artefacts ORDER BY registered_at, id")) {
            try Self.indexArtefact(try $0.decode(IndexArtefactRow.self))
        }
    }

    @discardableResult
    public func publish(_ request: RegistryRules.IndexPublication) async throws -> IndexChange {
        try await changeIndex(request, RegistryRules.publishIndex)
    }

    @discardableResult
    public func rollbackIndex(_ request: RegistryRules.IndexPublication) async throws -> IndexChange {
        try await changeIndex(request, RegistryRules.rollbackIndex)
    }

    private func changeIndex(_ request: RegistryRules.IndexPublication,
                             _ rule: @escaping @Sendable (RegistryRules.IndexPublication, RegistryRules.IndexFacts, EpochMillis) throws -> IndexChange) async throws -> IndexChange {
        let logger = self.logger
        return try await write { connection in
            let facts = RegistryRules.IndexFacts(
                artefact: try await Self.indexArtefact(connection, request.artefact, logger: logger),
                history: try await Self.indexHistory(connection, request.name, logger: logger),
                actorRegistered: try await Self.person(connection, request.actor, logger: logger) != nil)
            let change = try rule(request, facts, Date().epochMillis)
            try await connection.query("""
                INSERT INTO index_history (name, generation, action, from_artefact, to_artefact, actor, reason, changed_at)
                VALUES (\(change.name), \(Int32(change.generation)), \(change.action.rawValue), \(change.from), \(change.to), \(change.actor),
                        \(change.reason), \(change.changedAt))
                """, logger: logger)
            try await Self.bump(connection, logger: logger)
            return change
        }
    }

    public func indexHistory(_ name: String?) async throws -> [IndexChange] {
        let logger = self.logger
        return try await database.client.withConnection { try await Self.indexHistory($0, name, logger: logger) }
    }
}
#endif
