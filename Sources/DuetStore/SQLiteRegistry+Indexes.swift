public import DuetCore
import Foundation
import GRDB

/// Similarity index artefacts and their per-name aliases on the embedded registry: storage only,
/// the rules are `RegistryRules`'.
extension SQLiteRegistry {
    static func indexArtefact(_ row: Row) throws -> IndexArtefactRecord {
        IndexArtefactRecord(id: row["id"], manifest: try JSONDecoder().decode(IndexManifest.self, from: Data((row["manifest"] as String).utf8)),
                            registeredBy: row["registered_by"], registeredAt: row["registered_at"])
    }

    static func indexArtefact(_ db: Database, _ id: String?) throws -> IndexArtefactRecord? {
        guard let id else { return nil }
        return try Row.fetchOne(db, sql: "SELECT * FROM index_artefacts WHERE id = ?", arguments: [id]).map(indexArtefact)
    }

    static func indexChange(_ row: Row) -> IndexChange {
        IndexChange(name: row["name"], generation: row["generation"], action: IndexChange.Action(rawValue: row["action"]) ?? .publish,
                    from: row["from_artefact"], to: row["to_artefact"], actor: row["actor"], reason: row["reason"], changedAt: row["changed_at"])
    }

    static func indexHistory(_ db: Database, _ name: String?) throws -> [IndexChange] {
        let rows = if let name {
            try Row.fetchAll(db, sql: "SELECT * FROM index_history WHERE name = ? ORDER BY generation", arguments: [name])
        } else {
            try Row.fetchAll(db, sql: "SELECT * FROM index_history ORDER BY changed_at, name, generation")
        }
        return rows.map(indexChange)
    }

    public func register(_ index: IndexArtefactRecord) async throws {
        try await write { db in
            let record = try RegistryRules.registerIndex(index, exists: try Self.exists(db, "SELECT 1 FROM index_artefacts WHERE id = ?", index.id),
                                                         actorRegistered: try Self.person(db, index.registeredBy) != nil)
            try db.execute(sql: "INSERT INTO index_artefacts (id, name, manifest, registered_by, registered_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [record.id, record.name, try Self.encode(record.manifest), record.registeredBy, record.registeredAt])
        }
    }

    public func indexArtefact(_ id: String) async throws -> IndexArtefactRecord? {
        try await read { db in try Self.indexArtefact(db, id) }
    }

    public func indexArtefacts() async throws -> [IndexArtefactRecord] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM index_artefacts ORDER BY registered_at, id").map(Self.indexArtefact) }
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
        try await write { db in
            let facts = RegistryRules.IndexFacts(artefact: try Self.indexArtefact(db, request.artefact), history: try Self.indexHistory(db, request.name),
                                                 actorRegistered: try Self.person(db, request.actor) != nil)
            let change = try rule(request, facts, Date().epochMillis)
            try db.execute(sql: """
                INSERT INTO index_history (name, generation, action, from_artefact, to_artefact, actor, reason, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [change.name, change.generation, change.action.rawValue, change.from, change.to, change.actor, change.reason, change.changedAt])
            try Self.bumpServingVersion(db)
            return change
        }
    }

    public func indexHistory(_ name: String?) async throws -> [IndexChange] {
        try await read { db in try Self.indexHistory(db, name) }
    }
}
