public import DuetCore
import Foundation
import GRDB

/// The embedded registry: one SQLite file. Serve opens it read-only, and then every write fails.
public final class SQLiteRegistry: Registry {
    private let writer: any DatabaseWriter
    public let isReadOnly: Bool
    public let path: String

    /// `readOnly` is Serve's mode: the file must exist, and SQLite itself refuses writes.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        isReadOnly = readOnly
        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else {
                throw DuetError.notFound(kind: "registry", id: path)
            }
            // A queue: read-only WAL pools need the -shm file a writer created; a queue does not.
            do { writer = try DatabaseQueue(path: path, configuration: SQLiteFiles.configuration(readOnly: true)) } catch {
                throw DuetError.io(path: path, reason: "cannot open the registry read-only: \(error)")
            }
            return
        }
        writer = try SQLiteFiles.openForWriting(path: path, migrator: Self.migrator, what: "registry")
    }

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
        return migrator
    }

    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        guard !isReadOnly else { throw DuetError.refused("the registry is open read-only (Serve never writes it)") }
        do {
            return try await writer.write(body)
        } catch let error as DatabaseError where error.message?.contains("readonly") == true {
            throw DuetError.refused("the registry is open read-only (Serve never writes it)")
        }
    }

    private func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await writer.read(body)
    }

    private static func bumpServingVersion(_ db: Database) throws {
        try db.execute(sql: "UPDATE serving_state SET version = version + 1 WHERE id = 1")
    }

    // MARK: - Models

    public func register(_ model: ModelRecord) async throws {
        try Identifier.validate(model.id, field: "model id")
        try await write { db in
            if try Int.fetchOne(db, sql: "SELECT 1 FROM models WHERE id = ?", arguments: [model.id]) != nil {
                throw DuetError.conflict("model \(model.id) is already registered")
            }
            try db.execute(sql: """
                INSERT INTO models (id, name, kind, snapshot, parent, created_at, status) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [model.id, model.name, model.kind, model.snapshot, model.parent, model.createdAt, model.status.rawValue])
        }
    }

    public func model(_ id: String) async throws -> ModelRecord? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM models WHERE id = ?", arguments: [id]).map(Self.modelRecord) }
    }

    public func models() async throws -> [ModelRecord] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM models ORDER BY created_at, id").map(Self.modelRecord) }
    }

    static func modelRecord(_ row: Row) -> ModelRecord {
        ModelRecord(id: row["id"], name: row["name"], kind: row["kind"], snapshot: row["snapshot"], parent: row["parent"],
                    createdAt: row["created_at"], status: ModelStatus(rawValue: row["status"]) ?? .candidate)
    }

    public func setStatus(_ status: ModelStatus, of id: String) async throws {
        try await write { db in
            guard let current = try String.fetchOne(db, sql: "SELECT status FROM models WHERE id = ?", arguments: [id]) else {
                throw DuetError.notFound(kind: "model", id: id)
            }
            if current == ModelStatus.production.rawValue || status == .production {
                throw DuetError.refused("production status changes only through promote and rollback")
            }
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
        try await read { db in try Self.production(db) }
    }

    static func production(_ db: Database) throws -> (generation: Int, model: String?) {
        guard let row = try Row.fetchOne(db, sql: "SELECT generation, to_model FROM production_history ORDER BY generation DESC LIMIT 1") else {
            return (0, nil)
        }
        return (row["generation"], row["to_model"])
    }

    public func history() async throws -> [ProductionChange] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM production_history ORDER BY generation").map { row in
                ProductionChange(generation: row["generation"], action: ProductionAction(rawValue: row["action"]) ?? .promote,
                                 from: row["from_model"], to: row["to_model"], actor: row["actor"], reason: row["reason"],
                                 evaluationID: row["evaluation_id"], decisionID: row["decision_id"],
                                 overrideReason: row["override_reason"], changedAt: row["changed_at"])
            }
        }
    }

    @discardableResult
    public func promote(_ model: String, actor: String, reason: String, evidence: PromotionEvidence,
                        expectedGeneration: Int?) async throws -> ProductionChange {
        try Self.requireText(actor, "actor")
        try Self.requireText(reason, "reason")
        return try await write { db in
            let (generation, current) = try Self.production(db)
            if let expectedGeneration, expectedGeneration != generation {
                throw DuetError.conflict("production moved to generation \(generation) (expected \(expectedGeneration)) while this promotion was prepared; check `duet lab history` and try again")
            }
            guard let status = try String.fetchOne(db, sql: "SELECT status FROM models WHERE id = ?", arguments: [model]) else {
                throw DuetError.notFound(kind: "model", id: model)
            }
            if status == ModelStatus.rejected.rawValue { throw DuetError.refused("model \(model.prefix(12)) was rejected and cannot be promoted") }
            if current == model { throw DuetError.refused("model \(model.prefix(12)) is already in production (generation \(generation))") }
            var evaluationID: Int64?
            var decisionID: Int64?
            var overrideReason: String?
            switch evidence {
            case let .override(text):
                try Self.requireText(text, "override reason")
                overrideReason = text
            case .rules:
                (evaluationID, decisionID) = try Self.promotionEvidence(db, model: model, current: current)
            }
            let change = ProductionChange(generation: generation + 1, action: .promote, from: current, to: model, actor: actor,
                                          reason: reason, evaluationID: evaluationID, decisionID: decisionID,
                                          overrideReason: overrideReason, changedAt: Date().epochMillis)
            try Self.apply(change, db)
            if let decisionID {
                try db.execute(sql: "UPDATE decisions SET registry_generation = ? WHERE id = ?", arguments: [change.generation, decisionID])
            }
            return change
        }
    }

    /// The rules a promotion rests on (see `PromotionRules`), checked inside its transaction.
    static func promotionEvidence(_ db: Database, model: String, current: String?) throws -> (Int64?, Int64?) {
        let evaluation = current == nil
            ? try Int64.fetchOne(db, sql: "SELECT id FROM evaluations WHERE candidate = ? ORDER BY id DESC LIMIT 1", arguments: [model])
            : try Int64.fetchOne(db, sql: "SELECT id FROM evaluations WHERE candidate = ? AND baseline = ? ORDER BY id DESC LIMIT 1",
                                 arguments: [model, current])
        let decoder = JSONDecoder()
        let ships = try Row.fetchAll(db, sql: """
            SELECT d.id, d.arm, e.spec FROM decisions d JOIN experiments e ON e.id = d.experiment
            WHERE d.outcome = 'ship' ORDER BY d.id DESC
            """).map { row in
            PromotionRules.ShipDecision(id: row["id"], arm: row["arm"],
                                        spec: try decoder.decode(ExperimentSpec.self, from: Data((row["spec"] as String).utf8)))
        }
        return try PromotionRules.evidence(model: model, current: current, evaluationAgainstCurrent: evaluation, ships: ships)
    }

    static func apply(_ change: ProductionChange, _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO production_history (generation, action, from_model, to_model, actor, reason, evaluation_id, decision_id,
                                            override_reason, changed_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [change.generation, change.action.rawValue, change.from, change.to, change.actor, change.reason,
                             change.evaluationID, change.decisionID, change.overrideReason, change.changedAt])
        if let from = change.from {
            try db.execute(sql: "UPDATE models SET status = 'retired' WHERE id = ?", arguments: [from])
        }
        try db.execute(sql: "UPDATE models SET status = 'production' WHERE id = ?", arguments: [change.to])
        try bumpServingVersion(db)
    }

    @discardableResult
    public func rollback(to target: String?, actor: String, reason: String, expectedGeneration: Int?) async throws -> ProductionChange {
        try Self.requireText(actor, "actor")
        try Self.requireText(reason, "reason")
        return try await write { db in
            let (generation, current) = try Self.production(db)
            guard let current else { throw DuetError.refused("nothing is in production, so there is nothing to roll back") }
            if let expectedGeneration, expectedGeneration != generation {
                throw DuetError.conflict("production moved to generation \(generation) (expected \(expectedGeneration)); check `duet lab history` and try again")
            }
            let destination: String
            if let target {
                guard try Int.fetchOne(db, sql: "SELECT 1 FROM production_history WHERE to_model = ?", arguments: [target]) != nil else {
                    throw DuetError.refused("model \(target.prefix(12)) never served in production; roll back only to a model that did")
                }
                destination = target
            } else {
                guard let previous = try String.fetchOne(db, sql: "SELECT from_model FROM production_history WHERE generation = ?",
                                                         arguments: [generation]) else {
                    throw DuetError.refused("generation \(generation) was the first promotion; there is no earlier model to roll back to")
                }
                destination = previous
            }
            if destination == current { throw DuetError.refused("model \(destination.prefix(12)) is already in production") }
            let change = ProductionChange(generation: generation + 1, action: .rollback, from: current, to: destination, actor: actor,
                                          reason: reason, evaluationID: nil, decisionID: nil, overrideReason: nil,
                                          changedAt: Date().epochMillis)
            try Self.apply(change, db)
            return change
        }
    }

    static func requireText(_ value: String, _ field: String) throws {
        if value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw DuetError.invalidValue(field: field, reason: "must not be empty")
        }
    }

    // MARK: - Serving

    public func servingVersion() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT version FROM serving_state WHERE id = 1") ?? 0 }
    }

    public func servingConfiguration() async throws -> ServingConfiguration {
        try await read { db in
            let version = try Int.fetchOne(db, sql: "SELECT version FROM serving_state WHERE id = 1") ?? 0
            let (generation, production) = try Self.production(db)
            let running = try Row.fetchAll(db, sql: "SELECT * FROM experiments WHERE status = 'running' ORDER BY id").map(Self.experimentRecord)
            return ServingConfiguration(version: version, productionGeneration: generation, production: production, experiments: running)
        }
    }

    // MARK: - Experiments

    static func encode<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func experimentRecord(_ row: Row) -> ExperimentRecord {
        var spec = (try? JSONDecoder().decode(ExperimentSpec.self, from: Data((row["spec"] as String).utf8)))
            ?? ExperimentSpec(id: row["id"], hypothesis: "(unreadable spec)", arms: [], successMetrics: [])
        spec.status = ExperimentStatus(rawValue: row["status"]) ?? .draft
        return ExperimentRecord(spec: spec, phase: row["phase"], createdAt: row["created_at"], startedAt: row["started_at"],
                                stoppedAt: row["stopped_at"])
    }

    public func create(_ experiment: ExperimentSpec) async throws {
        try experiment.validate()
        var drafted = experiment
        drafted.status = .draft
        let draft = drafted
        let spec = try Self.encode(draft)
        try await write { db in
            if try Int.fetchOne(db, sql: "SELECT 1 FROM experiments WHERE id = ?", arguments: [draft.id]) != nil {
                throw DuetError.conflict("experiment '\(draft.id)' already exists")
            }
            for arm in draft.arms where try Int.fetchOne(db, sql: "SELECT 1 FROM models WHERE id = ?", arguments: [arm.bundleID]) == nil {
                throw DuetError.notFound(kind: "model for arm '\(arm.name)'", id: arm.bundleID)
            }
            let now = Date().epochMillis
            try db.execute(sql: "INSERT INTO experiments (id, spec, status, phase, created_at) VALUES (?, ?, 'draft', 1, ?)",
                           arguments: [draft.id, spec, now])
            try db.execute(sql: "INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (?, 1, ?, 'created', ?)",
                           arguments: [draft.id, spec, now])
        }
    }

    public func experiment(_ id: String) async throws -> ExperimentRecord? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM experiments WHERE id = ?", arguments: [id]).map(Self.experimentRecord) }
    }

    public func experiments() async throws -> [ExperimentRecord] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM experiments ORDER BY created_at, id").map(Self.experimentRecord) }
    }

    public func phases(of id: String) async throws -> [ExperimentPhase] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM experiment_phases WHERE experiment = ? ORDER BY phase", arguments: [id]).map { row in
                ExperimentPhase(phase: row["phase"], spec: try JSONDecoder().decode(ExperimentSpec.self, from: Data((row["spec"] as String).utf8)),
                                reason: row["reason"], startedAt: row["started_at"], endedAt: row["ended_at"])
            }
        }
    }

    private func move(_ id: String, to next: ExperimentStatus, _ extra: @escaping @Sendable (Database, EpochMillis) throws -> Void) async throws {
        try await write { db in
            guard let status = try String.fetchOne(db, sql: "SELECT status FROM experiments WHERE id = ?", arguments: [id]) else {
                throw DuetError.notFound(kind: "experiment", id: id)
            }
            let current = ExperimentStatus(rawValue: status) ?? .draft
            guard current.canMove(to: next) else {
                throw DuetError.refused("experiment '\(id)' is \(current.rawValue) and cannot become \(next.rawValue)")
            }
            let now = Date().epochMillis
            try db.execute(sql: "UPDATE experiments SET status = ? WHERE id = ?", arguments: [next.rawValue, id])
            try extra(db, now)
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
        try Self.requireText(reason, "reason")
        try spec.validate()
        guard spec.id == id else { throw DuetError.invalidValue(field: "experiment id", reason: "a phase cannot rename the experiment") }
        var runningSpec = spec
        runningSpec.status = .running
        let running = runningSpec
        let text = try Self.encode(running)
        try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT status, phase FROM experiments WHERE id = ?", arguments: [id]) else {
                throw DuetError.notFound(kind: "experiment", id: id)
            }
            guard (row["status"] as String) == ExperimentStatus.running.rawValue else {
                throw DuetError.refused("only a running experiment changes phase; '\(id)' is \(row["status"] as String)")
            }
            for arm in running.arms where try Int.fetchOne(db, sql: "SELECT 1 FROM models WHERE id = ?", arguments: [arm.bundleID]) == nil {
                throw DuetError.notFound(kind: "model for arm '\(arm.name)'", id: arm.bundleID)
            }
            let phase = (row["phase"] as Int) + 1
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
        try decision.validate()
        return try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT status, spec FROM experiments WHERE id = ?", arguments: [decision.experimentID]) else {
                throw DuetError.notFound(kind: "experiment", id: decision.experimentID)
            }
            let status = ExperimentStatus(rawValue: row["status"]) ?? .draft
            if status == .running {
                throw DuetError.refused("stop experiment '\(decision.experimentID)' before deciding it")
            }
            if let arm = decision.arm {
                let spec = try JSONDecoder().decode(ExperimentSpec.self, from: Data((row["spec"] as String).utf8))
                guard spec.arms.contains(where: { $0.name == arm }) else {
                    throw DuetError.invalidValue(field: "arm", reason: "experiment '\(decision.experimentID)' has no arm '\(arm)'")
                }
            }
            try db.execute(sql: """
                INSERT INTO decisions (experiment, outcome, arm, reviewer, reason, analysis_hash, override_reason, decided_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [decision.experimentID, decision.outcome.rawValue, decision.arm, decision.reviewer, decision.reason,
                                 decision.analysisHash, decision.overrideReason, decision.decidedAt])
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
                StoredDecision(id: row["id"], decision: Decision(
                    experimentID: row["experiment"], outcome: DecisionOutcome(rawValue: row["outcome"]) ?? .inconclusive, arm: row["arm"],
                    reviewer: row["reviewer"], reason: row["reason"], analysisHash: row["analysis_hash"],
                    overrideReason: row["override_reason"], registryGeneration: row["registry_generation"], decidedAt: row["decided_at"]))
            }
        }
    }

    @discardableResult
    public func add(_ incident: Incident) async throws -> Int64 {
        guard incident.from < incident.until else {
            throw DuetError.invalidValue(field: "incident window", reason: "--from must be before --to")
        }
        try Self.requireText(incident.reason, "reason")
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
