#if Postgres
public import DuetCore
import Foundation
import Logging
import PostgresNIO

/// Serve's view of the registry on PostgreSQL. It never migrates: at start it checks that the
/// schema is one it knows, and it connects under its own role (`PostgresServeRole`), so the
/// database refuses any write it might issue.
public final class PostgresServingSource: ServingSource {
    let database: PostgresDatabase

    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await PostgresSchema.requireCurrent(database)
    }

    public func servingVersion() async throws -> Int {
        try await PostgresRegistryReads.servingVersion(database)
    }

    public func servingConfiguration() async throws -> ServingConfiguration {
        try await PostgresRegistryReads.servingConfiguration(database)
    }

    /// Runs `sql` on Serve's own connection, past every Swift-level guard: the tests use it to prove
    /// that the database role, not only the type, refuses Serve's writes.
    package func executeOnServingConnection(_ sql: String) async throws {
        try await database.client.query(PostgresQuery(unsafeSQL: sql), logger: database.logger)
    }
}

/// The reads Serve's source and the Lab's registry share.
enum PostgresRegistryReads {
    static func first<each Column: PostgresDecodable>(_ connection: PostgresConnection, _ query: PostgresQuery,
                                                      as type: (repeat each Column).Type, logger: Logger) async throws -> (repeat each Column)? {
        for try await row in try await connection.query(query, logger: logger).decode(type) { return row }
        return nil
    }

    static func production(_ connection: PostgresConnection, logger: Logger) async throws -> RegistryRules.Production {
        guard let row = try await first(connection, "SELECT generation, to_model FROM production_history ORDER BY generation DESC LIMIT 1",
                                        as: (Int32, String).self, logger: logger) else { return .init(generation: 0, model: nil) }
        return .init(generation: Int(row.0), model: row.1)
    }

    static func servingVersion(_ database: PostgresDatabase) async throws -> Int {
        try await database.client.withConnection { connection in
            Int(try await first(connection, "SELECT version FROM serving_state WHERE id = 1", as: Int64.self, logger: database.logger) ?? Int64(0))
        }
    }

    typealias ExperimentRow = (String, String, String, Int32, Int64, Int64?, Int64?)
    static let experimentColumns = "id, spec, status, phase, created_at, started_at, stopped_at"
    static func experiment(_ row: ExperimentRow) -> ExperimentRecord {
        var spec = (try? JSONDecoder().decode(ExperimentSpec.self, from: Data(row.1.utf8)))
            ?? ExperimentSpec(id: row.0, hypothesis: "(unreadable spec)", arms: [], successMetrics: [])
        spec.status = ExperimentStatus(rawValue: row.2) ?? .draft
        return ExperimentRecord(spec: spec, phase: Int(row.3), createdAt: row.4, startedAt: row.5, stoppedAt: row.6)
    }

    /// One read-only transaction, so the version, the alias and the experiments agree.
    static func servingConfiguration(_ database: PostgresDatabase) async throws -> ServingConfiguration {
        let logger = database.logger
        return try await database.transaction { connection in
            let state = try await first(connection, "SELECT version, activate_at FROM serving_state WHERE id = 1", as: (Int64, Int64?).self, logger: logger)
            let version = state?.0 ?? 0
            let production = try await production(connection, logger: logger)
            var running: [ExperimentRecord] = []
            let query = PostgresQuery(unsafeSQL: "SELECT \(experimentColumns) FROM experiments WHERE status = 'running' ORDER BY id")
            for try await row in try await connection.query(query, logger: logger).decode(ExperimentRow.self) {
                running.append(experiment(row))
            }
            var indexes: [PublishedIndex] = []
            for try await (name, artefact, generation) in try await connection.query("""
                SELECT h.name, h.to_artefact, h.generation FROM index_history h
                WHERE h.generation = (SELECT MAX(generation) FROM index_history WHERE name = h.name) ORDER BY h.name
                """, logger: logger).decode((String, String, Int32).self) {
                indexes.append(PublishedIndex(name: name, artefact: artefact, generation: Int(generation)))
            }
            return ServingConfiguration(version: Int(version), productionGeneration: production.generation, production: production.model,
                                        experiments: running, activateAt: state?.1, indexes: indexes)
        }
    }
}

/// The registry on PostgreSQL as the Lab holds it. Every change is one transaction that first locks
/// the single `serving_state` row, so changes are serialised across machines and generations
/// increase strictly; inside it the backend reads what the rule needs and writes what it returns.
public final class PostgresRegistry: LabRegistry {
    let database: PostgresDatabase

    /// Creates or migrates the schema: the Lab owns it.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await Self.migrate(database)
    }

    static let migrationName = "registry-v1"
    static let reviewMigrationName = "registry-v2-review"
    static let metricOwnersMigrationName = "registry-v3-metric-owners"
    static let lanesMigrationName = "registry-v4-lanes"
    static let cutoverMigrationName = "registry-v5-cutover"
    static let indexesMigrationName = "registry-v6-indexes"

    static func migrate(_ database: PostgresDatabase) async throws {
        try await database.migrate(migrationName, [
            """
            CREATE OR REPLACE FUNCTION duet_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql
            """,
            """
            CREATE TABLE models (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, snapshot TEXT NOT NULL, parent TEXT,
                created_at BIGINT NOT NULL, status TEXT NOT NULL CHECK (status IN ('candidate', 'production', 'retired', 'rejected')))
            """,
            """
            CREATE TABLE evaluations (id BIGSERIAL PRIMARY KEY, candidate TEXT NOT NULL REFERENCES models(id), baseline TEXT REFERENCES models(id),
                baseline_kind TEXT NOT NULL, snapshot TEXT NOT NULL, split TEXT NOT NULL, k INTEGER NOT NULL, metrics TEXT NOT NULL,
                report_path TEXT, created_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE experiments (id TEXT PRIMARY KEY, spec TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('draft', 'running', 'stopped', 'decided')),
                phase INTEGER NOT NULL, created_at BIGINT NOT NULL, started_at BIGINT, stopped_at BIGINT)
            """,
            """
            CREATE TABLE experiment_phases (experiment TEXT NOT NULL REFERENCES experiments(id), phase INTEGER NOT NULL, spec TEXT NOT NULL,
                reason TEXT NOT NULL, started_at BIGINT NOT NULL, ended_at BIGINT, PRIMARY KEY (experiment, phase))
            """,
            """
            CREATE TABLE decisions (id BIGSERIAL PRIMARY KEY, experiment TEXT NOT NULL REFERENCES experiments(id), outcome TEXT NOT NULL, arm TEXT,
                reviewer TEXT NOT NULL, reason TEXT NOT NULL, analysis_hash TEXT NOT NULL, override_reason TEXT, registry_generation INTEGER,
                decided_at BIGINT NOT NULL)
            """,
            "CREATE TABLE incidents (id BIGSERIAL PRIMARY KEY, starts_at BIGINT NOT NULL, ends_at BIGINT NOT NULL, reason TEXT NOT NULL, source TEXT NOT NULL, created_at BIGINT NOT NULL)",
            """
            CREATE TABLE production_history (generation INTEGER PRIMARY KEY, action TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
                from_model TEXT REFERENCES models(id), to_model TEXT NOT NULL REFERENCES models(id), actor TEXT NOT NULL, reason TEXT NOT NULL,
                evaluation_id BIGINT REFERENCES evaluations(id), decision_id BIGINT REFERENCES decisions(id), override_reason TEXT, changed_at BIGINT NOT NULL)
            """,
            "CREATE TRIGGER production_history_append_only BEFORE UPDATE OR DELETE ON production_history FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
            "CREATE TABLE serving_state (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
            "INSERT INTO serving_state (id, version) VALUES (1, 0)",
        ])
        try await database.migrate(reviewMigrationName, [
            "ALTER TABLE experiments DROP CONSTRAINT experiments_status_check",
            "ALTER TABLE experiments ADD CONSTRAINT experiments_status_check CHECK (status IN ('draft', 'running', 'stopped', 'in-review', 'decided'))",
            "ALTER TABLE models ADD COLUMN owner_team TEXT, ADD COLUMN owner_contact TEXT",
            "ALTER TABLE decisions ADD COLUMN review TEXT",
            "CREATE TABLE people (name TEXT PRIMARY KEY, team TEXT NOT NULL, contact TEXT NOT NULL, token_sha256 TEXT, created_at BIGINT NOT NULL)",
            """
            CREATE TABLE reviews (id BIGSERIAL PRIMARY KEY, experiment TEXT NOT NULL REFERENCES experiments(id),
                kind TEXT NOT NULL CHECK (kind IN ('comment', 'objection', 'approval', 'resolution', 'overrule')),
                author TEXT NOT NULL REFERENCES people(name), text TEXT NOT NULL, parent BIGINT REFERENCES reviews(id), analysis_hash TEXT,
                created_at BIGINT NOT NULL)
            """,
            "CREATE INDEX reviews_experiment ON reviews(experiment)",
            "CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
            """
            CREATE TABLE webhooks (id BIGSERIAL PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, events TEXT NOT NULL, created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL, active BOOLEAN NOT NULL)
            """,
            """
            CREATE TABLE webhook_attempts (id BIGSERIAL PRIMARY KEY, webhook BIGINT NOT NULL REFERENCES webhooks(id), delivery TEXT NOT NULL,
                event TEXT NOT NULL, payload TEXT NOT NULL, attempt INTEGER NOT NULL, status_code INTEGER, error TEXT,
                outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')), at BIGINT NOT NULL)
            """,
            "CREATE TRIGGER webhook_attempts_append_only BEFORE UPDATE ON webhook_attempts FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
        ])
        try await database.migrate(metricOwnersMigrationName, [
            "CREATE TABLE metric_owners (metric TEXT PRIMARY KEY, team TEXT NOT NULL, contact TEXT NOT NULL)",
        ])
        try await database.migrate(lanesMigrationName, [
            """
            CREATE TABLE recipes (name TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, author TEXT NOT NULL REFERENCES people(name),
                created_at BIGINT NOT NULL, PRIMARY KEY (name, version))
            """,
            "CREATE TRIGGER recipes_append_only BEFORE UPDATE OR DELETE ON recipes FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
            "ALTER TABLE models ADD COLUMN recipe TEXT",
            "ALTER TABLE production_history ADD COLUMN rollout_id TEXT",
            """
            CREATE TABLE rollouts (id TEXT PRIMARY KEY REFERENCES experiments(id), state TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('running', 'paused', 'completed', 'rolled-back', 'aborted')), started_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE rollout_events (id BIGSERIAL PRIMARY KEY, rollout TEXT NOT NULL REFERENCES rollouts(id), action TEXT NOT NULL,
                stage INTEGER NOT NULL, share DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL, analysis_hash TEXT, at BIGINT NOT NULL)
            """,
            "CREATE TRIGGER rollout_events_append_only BEFORE UPDATE OR DELETE ON rollout_events FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
            "CREATE TABLE locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL)",
        ])
        try await database.migrate(cutoverMigrationName, [
            "ALTER TABLE serving_state ADD COLUMN activate_at BIGINT, ADD COLUMN cutover_delay_ms INTEGER NOT NULL DEFAULT \(RegistryRules.defaultCutoverDelayMilliseconds)",
        ])
        try await database.migrate(indexesMigrationName, [
            """
            CREATE TABLE index_artefacts (id TEXT PRIMARY KEY, name TEXT NOT NULL, manifest TEXT NOT NULL,
                registered_by TEXT NOT NULL REFERENCES people(name), registered_at BIGINT NOT NULL)
            """,
            "CREATE TRIGGER index_artefacts_immutable BEFORE UPDATE OR DELETE ON index_artefacts FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
            """
            CREATE TABLE index_history (name TEXT NOT NULL, generation INTEGER NOT NULL, action TEXT NOT NULL CHECK (action IN ('publish', 'rollback')),
                from_artefact TEXT REFERENCES index_artefacts(id), to_artefact TEXT NOT NULL REFERENCES index_artefacts(id), actor TEXT NOT NULL,
                reason TEXT NOT NULL, changed_at BIGINT NOT NULL, PRIMARY KEY (name, generation))
            """,
            "CREATE TRIGGER index_history_append_only BEFORE UPDATE OR DELETE ON index_history FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
        ])
    }

    var logger: Logger { database.logger }

    func write<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await database.transaction { connection in
            try await connection.query("SELECT version FROM serving_state WHERE id = 1 FOR UPDATE", logger: logger)
            return try await body(connection)
        }
    }

    func collect<T>(_ query: PostgresQuery, _ transform: (PostgresRow) throws -> T) async throws -> [T] {
        var out: [T] = []
        for try await row in try await database.client.query(query, logger: logger) { out.append(try transform(row)) }
        return out
    }

    static func first<each Column: PostgresDecodable>(_ connection: PostgresConnection, _ query: PostgresQuery,
                                                               as type: (repeat each Column).Type, logger: Logger) async throws -> (repeat each Column)? {
        try await PostgresRegistryReads.first(connection, query, as: type, logger: logger)
    }

    /// Every change Serve acts on: a new version, activated a cutover delay from now on every replica.
    static func bump(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("UPDATE serving_state SET version = version + 1, activate_at = \(Date().epochMillis) + cutover_delay_ms WHERE id = 1",
                                   logger: logger)
    }

    static func registered(_ connection: PostgresConnection, _ arms: [ExperimentArm], logger: Logger) async throws -> Set<String> {
        var known = Set<String>()
        for arm in arms where try await first(connection, "SELECT 1 FROM models WHERE id = \(arm.bundleID)", as: Int32.self, logger: logger) != nil {
            known.insert(arm.bundleID)
        }
        return known
    }

    static func decodeSpec(_ text: String) throws -> ExperimentSpec {
        try JSONDecoder().decode(ExperimentSpec.self, from: Data(text.utf8))
    }

    // MARK: - Models

    typealias ModelRow = (String, String, String, String, String?, Int64, String, String?, String?, String?)
    static let modelColumns = "id, name, kind, snapshot, parent, created_at, status, owner_team, owner_contact, recipe"
    static func model(_ row: ModelRow) -> ModelRecord {
        ModelRecord(id: row.0, name: row.1, kind: row.2, snapshot: row.3, parent: row.4, createdAt: row.5, status: ModelStatus(rawValue: row.6) ?? .candidate,
                    owner: row.7.map { Owner(team: $0, contact: row.8 ?? "") }, recipe: row.9)
    }

    public func register(_ model: ModelRecord) async throws {
        let logger = self.logger
        try await write { connection in
            let exists = try await Self.first(connection, "SELECT 1 FROM models WHERE id = \(model.id)", as: Int32.self, logger: logger) != nil
            try RegistryRules.register(model, alreadyRegistered: exists)
            try await connection.query("""
                INSERT INTO models (id, name, kind, snapshot, parent, created_at, status, owner_team, owner_contact, recipe)
                VALUES (\(model.id), \(model.name), \(model.kind), \(model.snapshot), \(model.parent), \(model.createdAt), \(model.status.rawValue),
                        \(model.owner?.team), \(model.owner?.contact), \(model.recipe))
                """, logger: logger)
        }
    }

    public func model(_ id: String) async throws -> ModelRecord? {
        try await collect(PostgresQuery(unsafeSQL: "SELECT \(Self.modelColumns) FROM models WHERE id = $1", binds: try Self.binds(id))) { try $0.decode(ModelRow.self) }
            .first.map(Self.model)
    }

    public func models() async throws -> [ModelRecord] {
        try await collect(PostgresQuery(unsafeSQL: "SELECT \(Self.modelColumns) FROM models ORDER BY created_at, id")) { try $0.decode(ModelRow.self) }.map(Self.model)
    }

    static func binds(_ values: String...) throws -> PostgresBindings {
        var binds = PostgresBindings()
        for value in values { try binds.append(value) }
        return binds
    }

    public func setStatus(_ status: ModelStatus, of id: String) async throws {
        let logger = self.logger
        try await write { connection in
            let current = try await Self.first(connection, "SELECT status FROM models WHERE id = \(id)", as: String.self, logger: logger)
            try RegistryRules.changeStatus(of: id, from: current.flatMap(ModelStatus.init(rawValue:)), to: status)
            try await connection.query("UPDATE models SET status = \(status.rawValue) WHERE id = \(id)", logger: logger)
        }
    }

    // MARK: - Evaluations

    @discardableResult
    public func add(_ evaluation: EvaluationRecord) async throws -> Int64 {
        let logger = self.logger
        return try await write { connection in
            try await Self.first(connection, """
                INSERT INTO evaluations (candidate, baseline, baseline_kind, snapshot, split, k, metrics, report_path, created_at)
                VALUES (\(evaluation.candidate), \(evaluation.baseline), \(evaluation.baselineKind), \(evaluation.snapshot), \(evaluation.split),
                        \(evaluation.k), \(evaluation.metricsJSON), \(evaluation.reportPath), \(evaluation.createdAt))
                RETURNING id
                """, as: Int64.self, logger: logger)!
        }
    }

    public func evaluations(candidate: String?) async throws -> [EvaluationRecord] {
        var query = DynamicQuery("SELECT id, candidate, baseline, baseline_kind, snapshot, split, k, metrics, report_path, created_at FROM evaluations")
        if let candidate { query.sql += " WHERE candidate = \(try query.bind(candidate))" }
        query.sql += " ORDER BY id"
        return try await collect(query.query) { row in
            let r = try row.decode((Int64, String, String?, String, String, String, Int32, String, String?, Int64).self)
            return EvaluationRecord(id: r.0, candidate: r.1, baseline: r.2, baselineKind: r.3, snapshot: r.4, split: r.5, k: Int(r.6),
                             metricsJSON: r.7, reportPath: r.8, createdAt: r.9)
        }
    }

    // MARK: - Production alias

    public func production() async throws -> (generation: Int, model: String?) {
        let logger = self.logger
        let production = try await database.client.withConnection { try await PostgresRegistryReads.production($0, logger: logger) }
        return (production.generation, production.model)
    }

    public func history() async throws -> [ProductionChange] {
        try await collect("""
            SELECT generation, action, from_model, to_model, actor, reason, evaluation_id, decision_id, override_reason, changed_at, rollout_id
            FROM production_history ORDER BY generation
            """) { row in
            let r = try row.decode((Int32, String, String?, String, String, String, Int64?, Int64?, String?, Int64, String?).self)
            return ProductionChange(generation: Int(r.0), action: ProductionAction(rawValue: r.1) ?? .promote, from: r.2, to: r.3, actor: r.4,
                             reason: r.5, evaluationID: r.6, decisionID: r.7, overrideReason: r.8, changedAt: r.9, rolloutID: r.10)
        }
    }

    static func apply(_ change: ProductionChange, _ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO production_history (generation, action, from_model, to_model, actor, reason, evaluation_id, decision_id, override_reason,
                                            changed_at, rollout_id)
            VALUES (\(Int32(change.generation)), \(change.action.rawValue), \(change.from), \(change.to), \(change.actor), \(change.reason),
                    \(change.evaluationID), \(change.decisionID), \(change.overrideReason), \(change.changedAt), \(change.rolloutID))
            """, logger: logger)
        if let from = change.from { try await connection.query("UPDATE models SET status = 'retired' WHERE id = \(from)", logger: logger) }
        try await connection.query("UPDATE models SET status = 'production' WHERE id = \(change.to)", logger: logger)
        try await bump(connection, logger: logger)
    }

    @discardableResult
    public func promote(_ request: RegistryRules.PromotionRequest) async throws -> ProductionChange {
        let logger = self.logger
        return try await write { connection in
            let production = try await PostgresRegistryReads.production(connection, logger: logger)
            let model = request.model
            let status = try await Self.first(connection, "SELECT status FROM models WHERE id = \(model)", as: String.self, logger: logger)
            let evaluation = if let current = production.model {
                try await Self.first(connection, "SELECT id FROM evaluations WHERE candidate = \(model) AND baseline = \(current) ORDER BY id DESC LIMIT 1",
                                     as: Int64.self, logger: logger)
            } else {
                try await Self.first(connection, "SELECT id FROM evaluations WHERE candidate = \(model) ORDER BY id DESC LIMIT 1", as: Int64.self, logger: logger)
            }
            let ships = try await Self.shipDecisions(connection, logger: logger)
            let owner = try await Self.first(connection, "SELECT owner_team, owner_contact FROM models WHERE id = \(model)",
                                             as: (String?, String?).self, logger: logger)
                .flatMap { row in row.0.map { Owner(team: $0, contact: row.1 ?? "") } }
            let facts = RegistryRules.PromotionFacts(production: production, candidateStatus: status.flatMap(ModelStatus.init(rawValue:)),
                                                     evaluationAgainstCurrent: evaluation, ships: ships, candidateOwner: owner,
                                                     teams: try await Self.teams(connection, logger: logger),
                                                     activeRollout: try await Self.activeRollouts(connection, logger: logger).first)
            let change = try RegistryRules.promote(request, facts: facts, at: Date().epochMillis)
            try await Self.apply(change, connection, logger: logger)
            if let decisionID = change.decisionID {
                try await connection.query("UPDATE decisions SET registry_generation = \(Int32(change.generation)) WHERE id = \(decisionID)", logger: logger)
            }
            return change
        }
    }

    @discardableResult
    public func rollback(_ request: RegistryRules.RollbackRequest) async throws -> ProductionChange {
        let logger = self.logger
        return try await write { connection in
            let production = try await PostgresRegistryReads.production(connection, logger: logger)
            let row: String?? = try await Self.first(connection, "SELECT from_model FROM production_history WHERE generation = \(Int32(production.generation))",
                                                     as: String?.self, logger: logger)
            let previous: String? = row ?? nil
            var served = Set<String>()
            for try await model in try await connection.query("SELECT DISTINCT to_model FROM production_history", logger: logger).decode(String.self) {
                served.insert(model)
            }
            let change = try RegistryRules.rollback(request, facts: .init(production: production, previous: previous, served: served),
                                                    at: Date().epochMillis)
            try await Self.apply(change, connection, logger: logger)
            return change
        }
    }

    // MARK: - Serving

    public func servingVersion() async throws -> Int {
        try await PostgresRegistryReads.servingVersion(database)
    }

    public func servingConfiguration() async throws -> ServingConfiguration {
        try await PostgresRegistryReads.servingConfiguration(database)
    }

    // MARK: - Experiments

    public func create(_ experiment: ExperimentSpec) async throws {
        let logger = self.logger
        try await write { connection in
            let exists = try await Self.first(connection, "SELECT 1 FROM experiments WHERE id = \(experiment.id)", as: Int32.self, logger: logger) != nil
            let draft = try RegistryRules.create(experiment, exists: exists,
                                                 registered: try await Self.registered(connection, experiment.arms, logger: logger))
            let spec = try SQLiteRegistry.encode(draft)
            let now = Date().epochMillis
            try await connection.query("INSERT INTO experiments (id, spec, status, phase, created_at) VALUES (\(draft.id), \(spec), 'draft', 1, \(now))", logger: logger)
            try await connection.query("INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (\(draft.id), 1, \(spec), 'created', \(now))", logger: logger)
        }
    }

    public func experiment(_ id: String) async throws -> ExperimentRecord? {
        try await collect(PostgresQuery(unsafeSQL: "SELECT \(PostgresRegistryReads.experimentColumns) FROM experiments WHERE id = $1", binds: try Self.binds(id))) {
            try $0.decode(PostgresRegistryReads.ExperimentRow.self)
        }.first.map(PostgresRegistryReads.experiment)
    }

    public func experiments() async throws -> [ExperimentRecord] {
        try await collect(PostgresQuery(unsafeSQL: "SELECT \(PostgresRegistryReads.experimentColumns) FROM experiments ORDER BY created_at, id")) {
            try $0.decode(PostgresRegistryReads.ExperimentRow.self)
        }.map(PostgresRegistryReads.experiment)
    }

    public func phases(of id: String) async throws -> [ExperimentPhase] {
        try await collect("SELECT phase, spec, reason, started_at, ended_at FROM experiment_phases WHERE experiment = \(id) ORDER BY phase") { row in
            let r = try row.decode((Int32, String, String, Int64, Int64?).self)
            return ExperimentPhase(phase: Int(r.0), spec: try Self.decodeSpec(r.1), reason: r.2, startedAt: r.3, endedAt: r.4)
        }
    }

    private func move(_ id: String, to next: ExperimentStatus,
                      _ extra: @escaping @Sendable (PostgresConnection, EpochMillis) async throws -> Void) async throws {
        let logger = self.logger
        try await write { connection in
            let status = try await Self.first(connection, "SELECT status FROM experiments WHERE id = \(id)", as: String.self, logger: logger)
            try RegistryRules.move(id, from: status.map { ExperimentStatus(rawValue: $0) ?? .draft }, to: next)
            try await connection.query("UPDATE experiments SET status = \(next.rawValue) WHERE id = \(id)", logger: logger)
            try await extra(connection, Date().epochMillis)
        }
    }

    public func start(experiment id: String) async throws {
        let logger = self.logger
        try await move(id, to: .running) { connection, now in
            try await connection.query("UPDATE experiments SET started_at = \(now) WHERE id = \(id)", logger: logger)
            try await connection.query("UPDATE experiment_phases SET started_at = \(now) WHERE experiment = \(id) AND phase = 1", logger: logger)
            try await Self.bump(connection, logger: logger)
        }
    }

    public func stop(experiment id: String) async throws {
        let logger = self.logger
        try await move(id, to: .stopped) { connection, now in
            try await connection.query("UPDATE experiments SET stopped_at = \(now) WHERE id = \(id)", logger: logger)
            try await connection.query("UPDATE experiment_phases SET ended_at = \(now) WHERE experiment = \(id) AND ended_at IS NULL", logger: logger)
            try await Self.bump(connection, logger: logger)
        }
    }

    public func changePhase(of id: String, to spec: ExperimentSpec, reason: String) async throws {
        let logger = self.logger
        try await write { connection in
            let current = try await Self.first(connection, "SELECT status, phase FROM experiments WHERE id = \(id)", as: (String, Int32).self, logger: logger)
                .map { (status: ExperimentStatus(rawValue: $0.0) ?? .draft, phase: Int($0.1)) }
            let (running, phase) = try RegistryRules.changePhase(of: id, to: spec, reason: reason, current: current,
                                                                 registered: try await Self.registered(connection, spec.arms, logger: logger))
            let text = try SQLiteRegistry.encode(running)
            let now = Date().epochMillis
            let next = Int32(phase)
            try await connection.query("UPDATE experiment_phases SET ended_at = \(now) WHERE experiment = \(id) AND ended_at IS NULL", logger: logger)
            try await connection.query("INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (\(id), \(next), \(text), \(reason), \(now))", logger: logger)
            try await connection.query("UPDATE experiments SET spec = \(text), phase = \(next) WHERE id = \(id)", logger: logger)
            try await Self.bump(connection, logger: logger)
        }
    }

    // MARK: - Decisions and incidents

    @discardableResult
    public func record(_ decision: Decision) async throws -> Int64 {
        let logger = self.logger
        return try await write { connection in
            let row = try await Self.first(connection, "SELECT status, spec FROM experiments WHERE id = \(decision.experimentID)",
                                           as: (String, String).self, logger: logger)
            let experiment = try row.map { (status: ExperimentStatus(rawValue: $0.0) ?? .draft, spec: try Self.decodeSpec($0.1)) }
            let recorded = try RegistryRules.record(decision, experiment: experiment,
                                                    review: try await Self.reviewEntries(connection, of: decision.experimentID, logger: logger),
                                                    reviewer: try await Self.person(connection, decision.reviewer, logger: logger))
            let review = try SQLiteRegistry.encode(DecisionReview(approvers: recorded.approvers, dissent: recorded.dissent))
            let id = try await Self.first(connection, """
                INSERT INTO decisions (experiment, outcome, arm, reviewer, reason, analysis_hash, override_reason, decided_at, review)
                VALUES (\(recorded.experimentID), \(recorded.outcome.rawValue), \(recorded.arm), \(recorded.reviewer), \(recorded.reason),
                        \(recorded.analysisHash), \(recorded.overrideReason), \(recorded.decidedAt), \(review))
                RETURNING id
                """, as: Int64.self, logger: logger)!
            try await connection.query("UPDATE experiments SET status = 'decided' WHERE id = \(decision.experimentID)", logger: logger)
            return id
        }
    }

    public func decisions(experiment: String?) async throws -> [StoredDecision] {
        var query = DynamicQuery("SELECT id, experiment, outcome, arm, reviewer, reason, analysis_hash, override_reason, registry_generation, decided_at, review FROM decisions")
        if let experiment { query.sql += " WHERE experiment = \(try query.bind(experiment))" }
        query.sql += " ORDER BY id"
        return try await collect(query.query) { row in
            let r = try row.decode((Int64, String, String, String?, String, String, String, String?, Int32?, Int64, String?).self)
            let review = DecisionReview.decode(r.10)
            return StoredDecision(id: r.0, decision: Decision(experimentID: r.1, outcome: DecisionOutcome(rawValue: r.2) ?? .inconclusive, arm: r.3,
                                                        reviewer: r.4, reason: r.5, analysisHash: r.6, overrideReason: r.7,
                                                        registryGeneration: r.8.map(Int.init), decidedAt: r.9,
                                                        approvers: review.approvers, dissent: review.dissent))
        }
    }

    // MARK: - People and review

    static func person(_ connection: PostgresConnection, _ name: String, logger: Logger) async throws -> Person? {
        try await first(connection, "SELECT name, team, contact, created_at FROM people WHERE name = \(name)",
                        as: (String, String, String, Int64).self, logger: logger)
            .map { Person(name: $0.0, team: $0.1, contact: $0.2, createdAt: $0.3) }
    }

    static func teams(_ connection: PostgresConnection, logger: Logger) async throws -> [String: String] {
        var teams: [String: String] = [:]
        for try await (name, team) in try await connection.query("SELECT name, team FROM people", logger: logger).decode((String, String).self) {
            teams[name] = team
        }
        return teams
    }

    public func add(_ person: Person) async throws {
        let logger = self.logger
        try await write { connection in
            try RegistryRules.addPerson(person, exists: try await Self.person(connection, person.name, logger: logger) != nil)
            try await connection.query("""
                INSERT INTO people (name, team, contact, created_at) VALUES (\(person.name), \(person.team), \(person.contact), \(person.createdAt))
                """, logger: logger)
        }
    }

    public func people() async throws -> [Person] {
        try await collect("SELECT name, team, contact, created_at FROM people ORDER BY name") { row in
            let r = try row.decode((String, String, String, Int64).self)
            return Person(name: r.0, team: r.1, contact: r.2, createdAt: r.3)
        }
    }

    public func setSignInTokenHash(_ hash: String?, for name: String) async throws {
        let logger = self.logger
        try await write { connection in
            guard try await Self.person(connection, name, logger: logger) != nil else { throw RegistryRules.unregistered(name) }
            try await connection.query("UPDATE people SET token_sha256 = \(hash) WHERE name = \(name)", logger: logger)
        }
    }

    public func signInTokenHash(for name: String) async throws -> String? {
        try await collect(PostgresQuery(unsafeSQL: "SELECT token_sha256 FROM people WHERE name = $1", binds: try Self.binds(name))) {
            try $0.decode(String?.self)
        }.first ?? nil
    }

    public func setOwner(_ owner: Owner?, ofModel id: String) async throws {
        try owner?.validate()
        let logger = self.logger
        try await write { connection in
            guard try await Self.first(connection, "SELECT 1 FROM models WHERE id = \(id)", as: Int32.self, logger: logger) != nil else {
                throw DuetError.notFound(kind: "model", id: id)
            }
            try await connection.query("UPDATE models SET owner_team = \(owner?.team), owner_contact = \(owner?.contact) WHERE id = \(id)", logger: logger)
        }
    }

    public func setOwner(_ owner: Owner?, ofMetric metric: String) async throws {
        try RegistryRules.requireText(metric, "metric")
        try owner?.validate()
        let logger = self.logger
        try await write { connection in
            if let owner {
                try await connection.query("""
                    INSERT INTO metric_owners (metric, team, contact) VALUES (\(metric), \(owner.team), \(owner.contact))
                    ON CONFLICT (metric) DO UPDATE SET team = excluded.team, contact = excluded.contact
                    """, logger: logger)
            } else {
                try await connection.query("DELETE FROM metric_owners WHERE metric = \(metric)", logger: logger)
            }
        }
    }

    public func metricOwners() async throws -> [String: Owner] {
        var owners: [String: Owner] = [:]
        for (metric, owner) in try await collect("SELECT metric, team, contact FROM metric_owners", { row in
            let r = try row.decode((String, String, String).self)
            return (r.0, Owner(team: r.1, contact: r.2))
        }) { owners[metric] = owner }
        return owners
    }

    typealias ReviewRow = (Int64, String, String, String, String, Int64?, String?, Int64)
    static let reviewColumns = "id, experiment, kind, author, text, parent, analysis_hash, created_at"
    static func reviewEntry(_ r: ReviewRow) -> ReviewEntry {
        ReviewEntry(id: r.0, experimentID: r.1, kind: ReviewKind(rawValue: r.2) ?? .comment, author: r.3, text: r.4, parent: r.5,
                    analysisHash: r.6, createdAt: r.7)
    }

    static func reviewEntries(_ connection: PostgresConnection, of experiment: String, logger: Logger) async throws -> [ReviewEntry] {
        var entries: [ReviewEntry] = []
        let query = PostgresQuery(unsafeSQL: "SELECT \(reviewColumns) FROM reviews WHERE experiment = $1 ORDER BY id", binds: try binds(experiment))
        for try await row in try await connection.query(query, logger: logger).decode(ReviewRow.self) { entries.append(reviewEntry(row)) }
        return entries
    }

    @discardableResult
    public func add(_ entry: ReviewEntry) async throws -> ReviewEntry {
        let logger = self.logger
        return try await write { connection in
            let row = try await Self.first(connection, "SELECT status, spec FROM experiments WHERE id = \(entry.experimentID)",
                                           as: (String, String).self, logger: logger)
            let experiment = try row.map { (status: ExperimentStatus(rawValue: $0.0) ?? .draft, spec: try Self.decodeSpec($0.1)) }
            var (stored, opensReview) = try RegistryRules.review(entry, experiment: experiment,
                                                                 entries: try await Self.reviewEntries(connection, of: entry.experimentID, logger: logger),
                                                                 author: try await Self.person(connection, entry.author, logger: logger))
            stored.id = try await Self.first(connection, """
                INSERT INTO reviews (experiment, kind, author, text, parent, analysis_hash, created_at)
                VALUES (\(stored.experimentID), \(stored.kind.rawValue), \(stored.author), \(stored.text), \(stored.parent), \(stored.analysisHash),
                        \(stored.createdAt))
                RETURNING id
                """, as: Int64.self, logger: logger)
            if opensReview {
                try await connection.query("UPDATE experiments SET status = 'in-review' WHERE id = \(entry.experimentID)", logger: logger)
            }
            return stored
        }
    }

    // MARK: - Webhooks

    @discardableResult
    public func add(_ webhook: WebhookRecord) async throws -> Int64 {
        try WebhookRules.validate(webhook)
        let logger = self.logger
        return try await write { connection in
            try await Self.first(connection, """
                INSERT INTO webhooks (url, secret, events, created_by, created_at, active)
                VALUES (\(webhook.url), \(webhook.secret), \(webhook.events.joined(separator: ",")), \(webhook.createdBy), \(webhook.createdAt), \(webhook.active))
                RETURNING id
                """, as: Int64.self, logger: logger)!
        }
    }

    public func webhooks() async throws -> [WebhookRecord] {
        try await collect("SELECT id, url, secret, events, created_by, created_at, active FROM webhooks ORDER BY id") { row in
            let r = try row.decode((Int64, String, String, String, String, Int64, Bool).self)
            return WebhookRecord(id: r.0, url: r.1, secret: r.2, events: r.3.split(separator: ",").map(String.init), createdBy: r.4, createdAt: r.5, active: r.6)
        }
    }

    public func setWebhook(_ id: Int64, active: Bool) async throws {
        let logger = self.logger
        try await write { connection in
            guard try await Self.first(connection, "UPDATE webhooks SET active = \(active) WHERE id = \(id) RETURNING id", as: Int64.self, logger: logger) != nil else {
                throw DuetError.notFound(kind: "webhook", id: "#\(id)")
            }
        }
    }

    public func add(_ attempt: WebhookAttempt) async throws {
        try await database.client.query("""
            INSERT INTO webhook_attempts (webhook, delivery, event, payload, attempt, status_code, error, outcome, at)
            VALUES (\(attempt.webhook), \(attempt.delivery), \(attempt.event), \(attempt.payload), \(Int32(attempt.attempt)), \(attempt.statusCode.map(Int32.init)),
                    \(attempt.error), \(attempt.outcome.rawValue), \(attempt.at))
            """, logger: logger)
    }

    public func webhookAttempts(limit: Int) async throws -> [WebhookAttempt] {
        try await collect("""
            SELECT id, webhook, delivery, event, payload, attempt, status_code, error, outcome, at FROM webhook_attempts ORDER BY id DESC LIMIT \(Int64(limit))
            """) { row in
            let r = try row.decode((Int64, Int64, String, String, String, Int32, Int32?, String?, String, Int64).self)
            return WebhookAttempt(id: r.0, webhook: r.1, delivery: r.2, event: r.3, payload: r.4, attempt: Int(r.5), statusCode: r.6.map(Int.init),
                                  error: r.7, outcome: WebhookAttempt.Outcome(rawValue: r.8) ?? .failed, at: r.9)
        }
    }

    public func review(of experiment: String?) async throws -> [ReviewEntry] {
        var query = DynamicQuery("SELECT \(Self.reviewColumns) FROM reviews")
        if let experiment { query.sql += " WHERE experiment = \(try query.bind(experiment))" }
        query.sql += " ORDER BY id"
        return try await collect(query.query) { Self.reviewEntry(try $0.decode(ReviewRow.self)) }
    }

    @discardableResult
    public func add(_ incident: Incident) async throws -> Int64 {
        try RegistryRules.add(incident)
        let logger = self.logger
        return try await write { connection in
            try await Self.first(connection, """
                INSERT INTO incidents (starts_at, ends_at, reason, source, created_at)
                VALUES (\(incident.from), \(incident.until), \(incident.reason), \(incident.source), \(incident.createdAt)) RETURNING id
                """, as: Int64.self, logger: logger)!
        }
    }

    public func incidents() async throws -> [Incident] {
        try await collect("SELECT id, starts_at, ends_at, reason, source, created_at FROM incidents ORDER BY starts_at") { row in
            let r = try row.decode((Int64, Int64, Int64, String, String, Int64).self)
            return Incident(id: r.0, from: r.1, until: r.2, reason: r.3, source: r.4, createdAt: r.5)
        }
    }
}
#endif
