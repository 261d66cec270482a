public import DuetCore
import Foundation
import GRDB

/// Serve's view of the embedded registry: a read-only SQLite connection, so SQLite itself refuses
/// any write issued on it, and a type with no write method to call.
public final class SQLiteServingSource: ServingSource {
    private let queue: DatabaseQueue
    public let path: String

    /// The file must exist: Serve never creates or migrates the registry.
    public init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw DuetError.notFound(kind: "registry", id: path)
        }
        // A queue: read-only WAL pools need the -shm file a writer created; a queue does not.
        do { queue = try DatabaseQueue(path: path, configuration: SQLiteFiles.configuration(readOnly: true)) } catch {
            throw DuetError.io(path: path, reason: "cannot open the registry read-only: \(error)")
        }
    }

    public func servingVersion() async throws -> Int {
        try await queue.read(SQLiteRegistryReads.servingVersion)
    }

    public func servingConfiguration() async throws -> ServingConfiguration {
        try await queue.read(SQLiteRegistryReads.servingConfiguration)
    }

    /// Runs `sql` on Serve's own connection, past every Swift-level guard: the tests use it to prove
    /// that the database, not only the type, refuses Serve's writes.
    package func executeOnServingConnection(_ sql: String) async throws {
        try await queue.inDatabase { db in try db.execute(sql: sql) }
    }
}

/// The reads Serve's source and the Lab's registry share.
enum SQLiteRegistryReads {
    static func servingVersion(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT version FROM serving_state WHERE id = 1") ?? 0
    }

    static func servingConfiguration(_ db: Database) throws -> ServingConfiguration {
        let version = try servingVersion(db)
        let production = try self.production(db)
        let running = try Row.fetchAll(db, sql: "SELECT * FROM experiments WHERE status = 'running' ORDER BY id").map(experimentRecord)
        let activateAt = try EpochMillis?.fetchOne(db, sql: "SELECT activate_at FROM serving_state WHERE id = 1") ?? nil
        let indexes = try Row.fetchAll(db, sql: """
            SELECT h.name, h.to_artefact, h.generation FROM index_history h
            WHERE h.generation = (SELECT MAX(generation) FROM index_history WHERE name = h.name) ORDER BY h.name
            """).map { PublishedIndex(name: $0["name"], artefact: $0["to_artefact"], generation: $0["generation"]) }
        return ServingConfiguration(version: version, productionGeneration: production.generation, production: production.model,
                                    experiments: running, activateAt: activateAt, indexes: indexes)
    }

    static func production(_ db: Database) throws -> RegistryRules.Production {
        guard let row = try Row.fetchOne(db, sql: "SELECT generation, to_model FROM production_history ORDER BY generation DESC LIMIT 1") else {
            return RegistryRules.Production(generation: 0, model: nil)
        }
        return RegistryRules.Production(generation: row["generation"], model: row["to_model"])
    }

    static func experimentRecord(_ row: Row) -> ExperimentRecord {
        var spec = (try? JSONDecoder().decode(ExperimentSpec.self, from: Data((row["spec"] as String).utf8)))
            ?? ExperimentSpec(id: row["id"], hypothesis: "(unreadable spec)", arms: [], successMetrics: [])
        spec.status = ExperimentStatus(rawValue: row["status"]) ?? .draft
        return ExperimentRecord(spec: spec, phase: row["phase"], createdAt: row["created_at"], startedAt: row["started_at"],
                                stoppedAt: row["stopped_at"])
    }
}

/// The embedded registry as the Lab holds it: one SQLite file, every change one transaction that
/// applies a rule from `RegistryRules`.
public final class SQLiteRegistry: LabRegistry {
    private let writer: any DatabaseWriter
    public let path: String

    /// Creates the file if needed and brings its schema up to date.
    public init(path: String) throws {
        self.path = path
        writer = try SQLiteFiles.openForWriting(path: path, migrator: Self.migrator, what: "registry")
    }

    /// The writer's `PRAGMA synchronous`; 2 (FULL) syncs the WAL before a commit returns.
    package func writerSynchronousLevel() async throws -> Int { try await SQLiteFiles.synchronousLevel(writer) }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-registry") { db in
            try db.execute(sql: """
                CREATE TABLE models (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    snapshot TEXT NOT NULL,
                    parent TEXT,
                    created_at INTEGER NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('candidate', 'production', 'retired', 'rejected'))
                );
                CREATE TABLE evaluations (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    candidate TEXT NOT NULL REFERENCES models(id),
                    baseline TEXT REFERENCES models(id),
                    baseline_kind TEXT NOT NULL,
                    snapshot TEXT NOT NULL,
                    split TEXT NOT NULL,
                    k INTEGER NOT NULL,
                    metrics TEXT NOT NULL,
                    report_path TEXT,
                    created_at INTEGER NOT NULL
                );
                CREATE INDEX evaluations_candidate ON evaluations(candidate);
                CREATE TABLE experiments (
                    id TEXT PRIMARY KEY,
                    spec TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('draft', 'running', 'stopped', 'decided')),
                    phase INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    started_at INTEGER,
                    stopped_at INTEGER
                );
                CREATE TABLE experiment_phases (
                    experiment TEXT NOT NULL REFERENCES experiments(id),
                    phase INTEGER NOT NULL,
                    spec TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    started_at INTEGER NOT NULL,
                    ended_at INTEGER,
                    PRIMARY KEY (experiment, phase)
                );
                CREATE TABLE decisions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    experiment TEXT NOT NULL REFERENCES experiments(id),
                    outcome TEXT NOT NULL,
                    arm TEXT,
                    reviewer TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    analysis_hash TEXT NOT NULL,
                    override_reason TEXT,
                    registry_generation INTEGER,
                    decided_at INTEGER NOT NULL
                );
                CREATE TABLE incidents (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    starts_at INTEGER NOT NULL,
                    ends_at INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    source TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE production_history (
                    generation INTEGER PRIMARY KEY,
                    action TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
                    from_model TEXT REFERENCES models(id),
                    to_model TEXT NOT NULL REFERENCES models(id),
                    actor TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    evaluation_id INTEGER REFERENCES evaluations(id),
                    decision_id INTEGER REFERENCES decisions(id),
                    override_reason TEXT,
                    changed_at INTEGER NOT NULL
                );
                CREATE TRIGGER production_history_append_only BEFORE UPDATE ON production_history
                    BEGIN SELECT RAISE(ABORT, 'production history is append-only'); END;
                CREATE TRIGGER production_history_no_delete BEFORE DELETE ON production_history
                    BEGIN SELECT RAISE(ABORT, 'production history is append-only'); END;
                -- One row Serve polls: bumped by every change it must act on.
                CREATE TABLE serving_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    version INTEGER NOT NULL
                );
                INSERT INTO serving_state (id, version) VALUES (1, 0);
                """)
        }
        migrator.registerMigration("v2-review") { db in
            // SQLite cannot change a CHECK in place: the experiments table is rebuilt with 'in-review' allowed.
            try db.execute(sql: """
                CREATE TABLE experiments_v2 (
                    id TEXT PRIMARY KEY,
                    spec TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('draft', 'running', 'stopped', 'in-review', 'decided')),
                    phase INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    started_at INTEGER,
                    stopped_at INTEGER
                );
                INSERT INTO experiments_v2 SELECT id, spec, status, phase, created_at, started_at, stopped_at FROM experiments;
                DROP TABLE experiments;
                ALTER TABLE experiments_v2 RENAME TO experiments;
                ALTER TABLE models ADD COLUMN owner_team TEXT;
                ALTER TABLE models ADD COLUMN owner_contact TEXT;
                ALTER TABLE decisions ADD COLUMN review TEXT;
                CREATE TABLE people (
                    name TEXT PRIMARY KEY,
                    team TEXT NOT NULL,
                    contact TEXT NOT NULL,
                    token_sha256 TEXT,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE reviews (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    experiment TEXT NOT NULL REFERENCES experiments(id),
                    kind TEXT NOT NULL CHECK (kind IN ('comment', 'objection', 'approval', 'resolution', 'overrule')),
                    author TEXT NOT NULL REFERENCES people(name),
                    text TEXT NOT NULL,
                    parent INTEGER REFERENCES reviews(id),
                    analysis_hash TEXT,
                    created_at INTEGER NOT NULL
                );
                CREATE INDEX reviews_experiment ON reviews(experiment);
                CREATE TRIGGER reviews_append_only BEFORE UPDATE ON reviews
                    BEGIN SELECT RAISE(ABORT, 'reviews is append-only'); END;
                CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
                    BEGIN SELECT RAISE(ABORT, 'reviews is append-only'); END;
                CREATE TABLE webhooks (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    url TEXT NOT NULL,
                    secret TEXT NOT NULL,
                    events TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    active INTEGER NOT NULL
                );
                CREATE TABLE webhook_attempts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    webhook INTEGER NOT NULL REFERENCES webhooks(id),
                    delivery TEXT NOT NULL,
                    event TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    status_code INTEGER,
                    error TEXT,
                    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed')),
                    at INTEGER NOT NULL
                );
                CREATE TRIGGER webhook_attempts_append_only BEFORE UPDATE ON webhook_attempts
                    BEGIN SELECT RAISE(ABORT, 'webhook_attempts is append-only'); END;
                """)
        }
        migrator.registerMigration("v3-metric-owners") { db in
            try db.execute(sql: "CREATE TABLE metric_owners (metric TEXT PRIMARY KEY, team TEXT NOT NULL, contact TEXT NOT NULL)")
        }
        migrator.registerMigration("v4-lanes") { db in
            try db.execute(sql: """
                CREATE TABLE recipes (
                    name TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    spec TEXT NOT NULL,
                    author TEXT NOT NULL REFERENCES people(name),
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (name, version)
                );
                CREATE TRIGGER recipes_append_only BEFORE UPDATE ON recipes
                    BEGIN SELECT RAISE(ABORT, 'recipes are append-only: a change is a new version'); END;
                CREATE TRIGGER recipes_no_delete BEFORE DELETE ON recipes
                    BEGIN SELECT RAISE(ABORT, 'recipes are append-only: a change is a new version'); END;
                ALTER TABLE models ADD COLUMN recipe TEXT;
                ALTER TABLE production_history ADD COLUMN rollout_id TEXT;
                CREATE TABLE rollouts (
                    id TEXT PRIMARY KEY REFERENCES experiments(id),
                    state TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('running', 'paused', 'completed', 'rolled-back', 'aborted')),
                    started_at INTEGER NOT NULL
                );
                CREATE TABLE rollout_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    rollout TEXT NOT NULL REFERENCES rollouts(id),
                    action TEXT NOT NULL,
                    stage INTEGER NOT NULL,
                    share REAL NOT NULL,
                    actor TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    analysis_hash TEXT,
                    at INTEGER NOT NULL
                );
                CREATE TRIGGER rollout_events_append_only BEFORE UPDATE ON rollout_events
                    BEGIN SELECT RAISE(ABORT, 'rollout events are append-only'); END;
                CREATE TRIGGER rollout_events_no_delete BEFORE DELETE ON rollout_events
                    BEGIN SELECT RAISE(ABORT, 'rollout events are append-only'); END;
                CREATE TABLE locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
                """)
        }
        migrator.registerMigration("v5-cutover") { db in
            try db.execute(sql: """
                ALTER TABLE serving_state ADD COLUMN activate_at INTEGER;
                ALTER TABLE serving_state ADD COLUMN cutover_delay_ms INTEGER NOT NULL DEFAULT \(RegistryRules.defaultCutoverDelayMilliseconds);
                """)
        }
        migrator.registerMigration("v6-indexes") { db in
            try db.execute(sql: """
                CREATE TABLE index_artefacts (id TEXT PRIMARY KEY, name TEXT NOT NULL, manifest TEXT NOT NULL,
                    registered_by TEXT NOT NULL REFERENCES people(name), registered_at INTEGER NOT NULL);
                CREATE TRIGGER index_artefacts_immutable_update BEFORE UPDATE ON index_artefacts
                    BEGIN SELECT RAISE(ABORT, 'index_artefacts is append-only: an artefact is immutable'); END;
                CREATE TRIGGER index_artefacts_immutable_delete BEFORE DELETE ON index_artefacts
                    BEGIN SELECT RAISE(ABORT, 'index_artefacts is append-only: an artefact is immutable'); END;
                CREATE TABLE index_history (name TEXT NOT NULL, generation INTEGER NOT NULL,
                    action TEXT NOT NULL CHECK (action IN ('publish', 'rollback')), from_artefact TEXT REFERENCES index_artefacts(id),
                    to_artefact TEXT NOT NULL REFERENCES index_artefacts(id), actor TEXT NOT NULL, reason TEXT NOT NULL,
                    changed_at INTEGER NOT NULL, PRIMARY KEY (name, generation));
                CREATE TRIGGER index_history_append_only_update BEFORE UPDATE ON index_history
                    BEGIN SELECT RAISE(ABORT, 'index history is append-only'); END;
                CREATE TRIGGER index_history_append_only_delete BEFORE DELETE ON index_history
                    BEGIN SELECT RAISE(ABORT, 'index history is append-only'); END;
                """)
        }
        return migrator
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writer.write(body)
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writer.read(body)
    }

    /// Every change Serve acts on: a new version, activated a cutover delay from now on every replica.
    static func bumpServingVersion(_ db: Database) throws {
        try db.execute(sql: "UPDATE serving_state SET version = version + 1, activate_at = ? + cutover_delay_ms WHERE id = 1",
                       arguments: [Date().epochMillis])
    }

    static func exists(_ db: Database, _ sql: String, _ argument: String) throws -> Bool {
        try Int.fetchOne(db, sql: sql, arguments: [argument]) != nil
    }

    static func registered(_ db: Database, _ arms: [ExperimentArm]) throws -> Set<String> {
        Set(try arms.map(\.bundleID).filter { try exists(db, "SELECT 1 FROM models WHERE id = ?", $0) })
    }

    static func decodeSpec(_ text: String) throws -> ExperimentSpec {
        try JSONDecoder().decode(ExperimentSpec.self, from: Data(text.utf8))
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    // MARK: - Models

    public func register(_ model: ModelRecord) async throws {
        try await write { db in
            try RegistryRules.register(model, alreadyRegistered: try Self.exists(db, "SELECT 1 FROM models WHERE id = ?", model.id))
            try db.execute(sql: """
                INSERT INTO models (id, name, kind, snapshot, parent, created_at, status, owner_team, owner_contact, recipe)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [model.id, model.name, model.kind, model.snapshot, model.parent, model.createdAt, model.status.rawValue,
                                 model.owner?.team, model.owner?.contact, model.recipe])
        }
    }

    public func model(_ id: String) async throws -> ModelRecord? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM models WHERE id = ?", arguments: [id]).map(Self.modelRecord) }
    }

    public func models() async throws -> [ModelRecord] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM models ORDER BY created_at, id").map(Self.modelRecord) }
    }

    static func modelRecord(_ row: Row) -> ModelRecord {
        let team: String? = row["owner_team"], contact: String? = row["owner_contact"]
        return ModelRecord(id: row["id"], name: row["name"], kind: row["kind"], snapshot: row["snapshot"], parent: row["parent"],
                           createdAt: row["created_at"], status: ModelStatus(rawValue: row["status"]) ?? .candidate,
                           owner: team.map { Owner(team: $0, contact: contact ?? "") }, recipe: row["recipe"])
    }

    public func setStatus(_ status: ModelStatus, of id: String) async throws {
        try await write { db in
            let current = try String.fetchOne(db, sql: "SELECT status FROM models WHERE id = ?", arguments: [id]).flatMap(ModelStatus.init(rawValue:))
            try RegistryRules.changeStatus(of: id, from: current, to: status)
            try db.execute(sql: "UPDATE models SET status = ? WHERE id = ?", arguments: [status.rawValue, id])
        }
    }

    // MARK: - Evaluations

    @discardableResult
    public func add(_ evaluation: EvaluationRecord) async throws -> Int64 {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO evaluations (candidate, baseline, baseline_kind, snapshot, split, k, metrics, report_path, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [evaluation.candidate, evaluation.baseline, evaluation.baselineKind, evaluation.snapshot,
                                 evaluation.split, evaluation.k, evaluation.metricsJSON, evaluation.reportPath, evaluation.createdAt])
            return db.lastInsertedRowID
        }
    }

    public func evaluations(candidate: String?) async throws -> [EvaluationRecord] {
        try await read { db in
            let rows = candidate == nil
                ? try Row.fetchAll(db, sql: "SELECT * FROM evaluations ORDER BY id")
                : try Row.fetchAll(db, sql: "SELECT * FROM evaluations WHERE candidate = ? ORDER BY id", arguments: [candidate])
            return rows.map(Self.evaluationRecord)
        }
    }

    static func evaluationRecord(_ row: Row) -> EvaluationRecord {
        EvaluationRecord(id: row["id"], candidate: row["candidate"], baseline: row["baseline"], baselineKind: row["baseline_kind"],
                         snapshot: row["snapshot"], split: row["split"], k: row["k"], metricsJSON: row["metrics"],
                         reportPath: row["report_path"], createdAt: row["created_at"])
    }

    // MARK: - Production alias

    public func production() async throws -> (generation: Int, model: String?) {
        let production = try await read(SQLiteRegistryReads.production)
        return (production.generation, production.model)
    }

    public func history() async throws -> [ProductionChange] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM production_history ORDER BY generation").map { row in
                ProductionChange(generation: row["generation"], action: ProductionAction(rawValue: row["action"]) ?? .promote,
                                 from: row["from_model"], to: row["to_model"], actor: row["actor"], reason: row["reason"],
                                 evaluationID: row["evaluation_id"], decisionID: row["decision_id"],
                                 overrideReason: row["override_reason"], changedAt: row["changed_at"], rolloutID: row["rollout_id"])
            }
        }
    }

    @discardableResult
    public func promote(_ request: RegistryRules.PromotionRequest) async throws -> ProductionChange {
        try await write { db in
            let production = try SQLiteRegistryReads.production(db)
            let status = try String.fetchOne(db, sql: "SELECT status FROM models WHERE id = ?", arguments: [request.model])
            let evaluation = production.model == nil
                ? try Int64.fetchOne(db, sql: "SELECT id FROM evaluations WHERE candidate = ? ORDER BY id DESC LIMIT 1", arguments: [request.model])
                : try Int64.fetchOne(db, sql: "SELECT id FROM evaluations WHERE candidate = ? AND baseline = ? ORDER BY id DESC LIMIT 1",
                                     arguments: [request.model, production.model])
            let ships = try Self.shipDecisions(db)
            let owner = try Row.fetchOne(db, sql: "SELECT * FROM models WHERE id = ?", arguments: [request.model]).flatMap { Self.modelRecord($0).owner }
            let facts = RegistryRules.PromotionFacts(production: production, candidateStatus: status.flatMap(ModelStatus.init(rawValue:)),
                                                     evaluationAgainstCurrent: evaluation, ships: ships, candidateOwner: owner,
                                                     teams: try Self.teams(db), activeRollout: try Self.activeRollouts(db).first)
            let change = try RegistryRules.promote(request, facts: facts, at: Date().epochMillis)
            try Self.apply(change, db)
            if let decisionID = change.decisionID {
                try db.execute(sql: "UPDATE decisions SET registry_generation = ? WHERE id = ?", arguments: [change.generation, decisionID])
            }
            return change
        }
    }

    @discardableResult
    public func rollback(_ request: RegistryRules.RollbackRequest) async throws -> ProductionChange {
        try await write { db in
            let production = try SQLiteRegistryReads.production(db)
            let previous = try String.fetchOne(db, sql: "SELECT from_model FROM production_history WHERE generation = ?",
                                               arguments: [production.generation])
            let served = Set(try String.fetchAll(db, sql: "SELECT DISTINCT to_model FROM production_history"))
            let change = try RegistryRules.rollback(request, facts: .init(production: production, previous: previous, served: served),
                                                    at: Date().epochMillis)
            try Self.apply(change, db)
            return change
        }
    }

    static func apply(_ change: ProductionChange, _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO production_history (generation, action, from_model, to_model, actor, reason, evaluation_id, decision_id,
                                            override_reason, changed_at, rollout_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [change.generation, change.action.rawValue, change.from, change.to, change.actor, change.reason,
                             change.evaluationID, change.decisionID, change.overrideReason, change.changedAt, change.rolloutID])
        if let from = change.from {
            try db.execute(sql: "UPDATE models SET status = 'retired' WHERE id = ?", arguments: [from])
        }
        try db.execute(sql: "UPDATE models SET status = 'production' WHERE id = ?", arguments: [change.to])
        try bumpServingVersion(db)
    }

    // MARK: - Serving

    public func servingVersion() async throws -> Int {
        try await read(SQLiteRegistryReads.servingVersion)
    }

    public func servingConfiguration() async throws -> ServingConfiguration {
        try await read(SQLiteRegistryReads.servingConfiguration)
    }

    // MARK: - Experiments

    public func create(_ experiment: ExperimentSpec) async throws {
        try await write { db in
            let draft = try RegistryRules.create(experiment, exists: try Self.exists(db, "SELECT 1 FROM experiments WHERE id = ?", experiment.id),
                                                 registered: try Self.registered(db, experiment.arms))
            let spec = try Self.encode(draft)
            let now = Date().epochMillis
            try db.execute(sql: "INSERT INTO experiments (id, spec, status, phase, created_at) VALUES (?, ?, 'draft', 1, ?)",
                           arguments: [draft.id, spec, now])
            try db.execute(sql: "INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (?, 1, ?, 'created', ?)",
                           arguments: [draft.id, spec, now])
        }
    }

    public func experiment(_ id: String) async throws -> ExperimentRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM experiments WHERE id = ?", arguments: [id]).map(SQLiteRegistryReads.experimentRecord)
        }
    }

    public func experiments() async throws -> [ExperimentRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM experiments ORDER BY created_at, id").map(SQLiteRegistryReads.experimentRecord)
        }
    }

    public func phases(of id: String) async throws -> [ExperimentPhase] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM experiment_phases WHERE experiment = ? ORDER BY phase", arguments: [id]).map { row in
                ExperimentPhase(phase: row["phase"], spec: try Self.decodeSpec(row["spec"]),
                                reason: row["reason"], startedAt: row["started_at"], endedAt: row["ended_at"])
            }
        }
    }

    private func move(_ id: String, to next: ExperimentStatus, _ extra: @escaping @Sendable (Database, EpochMillis) throws -> Void) async throws {
        try await write { db in
            let current = try String.fetchOne(db, sql: "SELECT status FROM experiments WHERE id = ?", arguments: [id])
                .map { ExperimentStatus(rawValue: $0) ?? .draft }
            try RegistryRules.move(id, from: current, to: next)
            try db.execute(sql: "UPDATE experiments SET status = ? WHERE id = ?", arguments: [next.rawValue, id])
            try extra(db, Date().epochMillis)
        }
    }

    public func start(experiment id: String) async throws {
        try await move(id, to: .running) { db, now in
            try db.execute(sql: "UPDATE experiments SET started_at = ? WHERE id = ?", arguments: [now, id])
            try db.execute(sql: "UPDATE experiment_phases SET started_at = ? WHERE experiment = ? AND phase = 1", arguments: [now, id])
            try Self.bumpServingVersion(db)
        }
    }

    public func stop(experiment id: String) async throws {
        try await move(id, to: .stopped) { db, now in
            try db.execute(sql: "UPDATE experiments SET stopped_at = ? WHERE id = ?", arguments: [now, id])
            try db.execute(sql: "UPDATE experiment_phases SET ended_at = ? WHERE experiment = ? AND ended_at IS NULL", arguments: [now, id])
            try Self.bumpServingVersion(db)
        }
    }

    public func changePhase(of id: String, to spec: ExperimentSpec, reason: String) async throws {
        try await write { db in
            let current = try Row.fetchOne(db, sql: "SELECT status, phase FROM experiments WHERE id = ?", arguments: [id]).map { row in
                (status: ExperimentStatus(rawValue: row["status"]) ?? .draft, phase: row["phase"] as Int)
            }
            let (running, phase) = try RegistryRules.changePhase(of: id, to: spec, reason: reason, current: current,
                                                                 registered: try Self.registered(db, spec.arms))
            let text = try Self.encode(running)
            let now = Date().epochMillis
            try db.execute(sql: "UPDATE experiment_phases SET ended_at = ? WHERE experiment = ? AND ended_at IS NULL", arguments: [now, id])
            try db.execute(sql: "INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [id, phase, text, reason, now])
            try db.execute(sql: "UPDATE experiments SET spec = ?, phase = ? WHERE id = ?", arguments: [text, phase, id])
            try Self.bumpServingVersion(db)
        }
    }

    // MARK: - Decisions and incidents

    @discardableResult
    public func record(_ decision: Decision) async throws -> Int64 {
        try await write { db in
            let experiment = try Row.fetchOne(db, sql: "SELECT status, spec FROM experiments WHERE id = ?", arguments: [decision.experimentID])
                .map { row in (status: ExperimentStatus(rawValue: row["status"]) ?? .draft, spec: try Self.decodeSpec(row["spec"])) }
            let recorded = try RegistryRules.record(decision, experiment: experiment, review: try Self.reviewEntries(db, of: decision.experimentID),
                                                    reviewer: try Self.person(db, decision.reviewer))
            try db.execute(sql: """
                INSERT INTO decisions (experiment, outcome, arm, reviewer, reason, analysis_hash, override_reason, decided_at, review)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [recorded.experimentID, recorded.outcome.rawValue, recorded.arm, recorded.reviewer, recorded.reason,
                                 recorded.analysisHash, recorded.overrideReason, recorded.decidedAt,
                                 try Self.encode(DecisionReview(approvers: recorded.approvers, dissent: recorded.dissent))])
            let id = db.lastInsertedRowID
            try db.execute(sql: "UPDATE experiments SET status = 'decided' WHERE id = ?", arguments: [decision.experimentID])
            return id
        }
    }

    public func decisions(experiment: String?) async throws -> [StoredDecision] {
        try await read { db in
            let rows = experiment == nil
                ? try Row.fetchAll(db, sql: "SELECT * FROM decisions ORDER BY id")
                : try Row.fetchAll(db, sql: "SELECT * FROM decisions WHERE experiment = ? ORDER BY id", arguments: [experiment])
            return rows.map { row in
                let review = DecisionReview.decode(row["review"])
                return StoredDecision(id: row["id"], decision: Decision(
                    experimentID: row["experiment"], outcome: DecisionOutcome(rawValue: row["outcome"]) ?? .inconclusive, arm: row["arm"],
                    reviewer: row["reviewer"], reason: row["reason"], analysisHash: row["analysis_hash"],
                    overrideReason: row["override_reason"], registryGeneration: row["registry_generation"], decidedAt: row["decided_at"],
                    approvers: review.approvers, dissent: review.dissent))
            }
        }
    }

    // MARK: - People and review

    static func person(_ db: Database, _ name: String) throws -> Person? {
        try Row.fetchOne(db, sql: "SELECT * FROM people WHERE name = ?", arguments: [name]).map {
            Person(name: $0["name"], team: $0["team"], contact: $0["contact"], createdAt: $0["created_at"])
        }
    }

    static func teams(_ db: Database) throws -> [String: String] {
        var teams: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT name, team FROM people") { teams[row["name"]] = row["team"] }
        return teams
    }

    public func add(_ person: Person) async throws {
        try await write { db in
            try RegistryRules.addPerson(person, exists: try Self.person(db, person.name) != nil)
            try db.execute(sql: "INSERT INTO people (name, team, contact, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [person.name, person.team, person.contact, person.createdAt])
        }
    }

    public func people() async throws -> [Person] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM people ORDER BY name").map {
                Person(name: $0["name"], team: $0["team"], contact: $0["contact"], createdAt: $0["created_at"])
            }
        }
    }

    public func setSignInTokenHash(_ hash: String?, for name: String) async throws {
        try await write { db in
            guard try Self.person(db, name) != nil else { throw RegistryRules.unregistered(name) }
            try db.execute(sql: "UPDATE people SET token_sha256 = ? WHERE name = ?", arguments: [hash, name])
        }
    }

    public func signInTokenHash(for name: String) async throws -> String? {
        try await read { db in try String.fetchOne(db, sql: "SELECT token_sha256 FROM people WHERE name = ?", arguments: [name]) }
    }

    public func setOwner(_ owner: Owner?, ofModel id: String) async throws {
        try owner?.validate()
        try await write { db in
            guard try Self.exists(db, "SELECT 1 FROM models WHERE id = ?", id) else { throw DuetError.notFound(kind: "model", id: id) }
            try db.execute(sql: "UPDATE models SET owner_team = ?, owner_contact = ? WHERE id = ?", arguments: [owner?.team, owner?.contact, id])
        }
    }

    public func setOwner(_ owner: Owner?, ofMetric metric: String) async throws {
        try RegistryRules.requireText(metric, "metric")
        try owner?.validate()
        try await write { db in
            if let owner {
                try db.execute(sql: "INSERT INTO metric_owners (metric, team, contact) VALUES (?, ?, ?) ON CONFLICT (metric) DO UPDATE SET team = excluded.team, contact = excluded.contact",
                               arguments: [metric, owner.team, owner.contact])
            } else {
                try db.execute(sql: "DELETE FROM metric_owners WHERE metric = ?", arguments: [metric])
            }
        }
    }

    public func metricOwners() async throws -> [String: Owner] {
        try await read { db in
            var owners: [String: Owner] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM metric_owners") { owners[row["metric"]] = Owner(team: row["team"], contact: row["contact"]) }
            return owners
        }
    }

    static func reviewEntries(_ db: Database, of experiment: String?) throws -> [ReviewEntry] {
        let rows = experiment == nil
            ? try Row.fetchAll(db, sql: "SELECT * FROM reviews ORDER BY id")
            : try Row.fetchAll(db, sql: "SELECT * FROM reviews WHERE experiment = ? ORDER BY id", arguments: [experiment])
        return rows.map { row in
            ReviewEntry(id: row["id"], experimentID: row["experiment"], kind: ReviewKind(rawValue: row["kind"]) ?? .comment, author: row["author"],
                        text: row["text"], parent: row["parent"], analysisHash: row["analysis_hash"], createdAt: row["created_at"])
        }
    }

    @discardableResult
    public func add(_ entry: ReviewEntry) async throws -> ReviewEntry {
        try await write { db in
            let experiment = try Row.fetchOne(db, sql: "SELECT status, spec FROM experiments WHERE id = ?", arguments: [entry.experimentID])
                .map { row in (status: ExperimentStatus(rawValue: row["status"]) ?? .draft, spec: try Self.decodeSpec(row["spec"])) }
            var (stored, opensReview) = try RegistryRules.review(entry, experiment: experiment, entries: try Self.reviewEntries(db, of: entry.experimentID),
                                                                 author: try Self.person(db, entry.author))
            try db.execute(sql: """
                INSERT INTO reviews (experiment, kind, author, text, parent, analysis_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [stored.experimentID, stored.kind.rawValue, stored.author, stored.text, stored.parent, stored.analysisHash, stored.createdAt])
            stored.id = db.lastInsertedRowID
            if opensReview {
                try db.execute(sql: "UPDATE experiments SET status = 'in-review' WHERE id = ?", arguments: [entry.experimentID])
            }
            return stored
        }
    }

    public func review(of experiment: String?) async throws -> [ReviewEntry] {
        try await read { db in try Self.reviewEntries(db, of: experiment) }
    }

    // MARK: - Webhooks

    @discardableResult
    public func add(_ webhook: WebhookRecord) async throws -> Int64 {
        try WebhookRules.validate(webhook)
        return try await write { db in
            try db.execute(sql: "INSERT INTO webhooks (url, secret, events, created_by, created_at, active) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [webhook.url, webhook.secret, webhook.events.joined(separator: ","), webhook.createdBy, webhook.createdAt, webhook.active])
            return db.lastInsertedRowID
        }
    }

    public func webhooks() async throws -> [WebhookRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhooks ORDER BY id").map { row in
                WebhookRecord(id: row["id"], url: row["url"], secret: row["secret"], events: (row["events"] as String).split(separator: ",").map(String.init),
                              createdBy: row["created_by"], createdAt: row["created_at"], active: row["active"])
            }
        }
    }

    public func setWebhook(_ id: Int64, active: Bool) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE webhooks SET active = ? WHERE id = ?", arguments: [active, id])
            if db.changesCount == 0 { throw DuetError.notFound(kind: "webhook", id: "#\(id)") }
        }
    }

    public func add(_ attempt: WebhookAttempt) async throws {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO webhook_attempts (webhook, delivery, event, payload, attempt, status_code, error, outcome, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [attempt.webhook, attempt.delivery, attempt.event, attempt.payload, attempt.attempt, attempt.statusCode, attempt.error,
                                 attempt.outcome.rawValue, attempt.at])
        }
    }

    public func webhookAttempts(limit: Int) async throws -> [WebhookAttempt] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM webhook_attempts ORDER BY id DESC LIMIT ?", arguments: [limit]).map { row in
                WebhookAttempt(id: row["id"], webhook: row["webhook"], delivery: row["delivery"], event: row["event"], payload: row["payload"],
                               attempt: row["attempt"], statusCode: row["status_code"], error: row["error"],
                               outcome: WebhookAttempt.Outcome(rawValue: row["outcome"]) ?? .failed, at: row["at"])
            }
        }
    }

    @discardableResult
    public func add(_ incident: Incident) async throws -> Int64 {
        try RegistryRules.add(incident)
        return try await write { db in
            try db.execute(sql: "INSERT INTO incidents (starts_at, ends_at, reason, source, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [incident.from, incident.until, incident.reason, incident.source, incident.createdAt])
            return db.lastInsertedRowID
        }
    }

    public func incidents() async throws -> [Incident] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM incidents ORDER BY starts_at").map { row in
                Incident(id: row["id"], from: row["starts_at"], until: row["ends_at"], reason: row["reason"], source: row["source"],
                         createdAt: row["created_at"])
            }
        }
    }
}
