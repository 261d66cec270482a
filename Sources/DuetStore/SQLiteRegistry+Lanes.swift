public import DuetCore
import Foundation
import GRDB

/// Recipes, staged rollouts and locks on the embedded registry: storage only, the rules are `RegistryRules`'.
extension SQLiteRegistry {
    // MARK: - Recipes

    static func recipe(_ row: Row) throws -> Recipe {
        var recipe = try JSONDecoder().decode(Recipe.self, from: Data((row["spec"] as String).utf8))
        recipe.version = row["version"]
        return recipe
    }

    static func recipe(_ db: Database, name: String, version: Int?) throws -> Recipe? {
        let row = if let version {
            try Row.fetchOne(db, sql: "SELECT * FROM recipes WHERE name = ? AND version = ?", arguments: [name, version])
        } else {
            try Row.fetchOne(db, sql: "SELECT * FROM recipes WHERE name = ? ORDER BY version DESC LIMIT 1", arguments: [name])
        }
        return try row.map(recipe)
    }

    /// The recipe a "name@version" reference names, if it parses and exists.
    static func recipe(_ db: Database, reference: String?) throws -> Recipe? {
        guard let reference else { return nil }
        let (name, version) = Recipe.parseReference(reference)
        guard let version else { return nil }
        return try recipe(db, name: name, version: version)
    }

    @discardableResult
    public func add(_ recipe: Recipe) async throws -> Recipe {
        try await write { db in
            let newest = try Self.recipe(db, name: recipe.name, version: nil)
            guard let stored = try RegistryRules.add(recipe, newest: newest, author: try Self.person(db, recipe.author)) else { return newest! }
            try db.execute(sql: "INSERT INTO recipes (name, version, spec, author, created_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [stored.name, stored.version, try Self.encode(stored), stored.author, stored.createdAt])
            return stored
        }
    }

    public func recipes() async throws -> [Recipe] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM recipes ORDER BY name, version").map(Self.recipe) }
    }

    public func recipe(_ name: String, version: Int?) async throws -> Recipe? {
        try await read { db in try Self.recipe(db, name: name, version: version) }
    }

    // MARK: - Rollouts

    static func activeRollouts(_ db: Database) throws -> [String] {
        try String.fetchAll(db, sql: "SELECT id FROM rollouts WHERE status IN ('running', 'paused') ORDER BY started_at")
    }

    static func rollout(_ db: Database, _ id: String) throws -> Rollout? {
        try String.fetchOne(db, sql: "SELECT state FROM rollouts WHERE id = ?", arguments: [id]).map {
            try JSONDecoder().decode(Rollout.self, from: Data($0.utf8))
        }
    }

    @discardableResult
    public func start(_ rollout: Rollout) async throws -> Rollout {
        try await write { db in
            let production = try SQLiteRegistryReads.production(db)
            let candidate = try Row.fetchOne(db, sql: "SELECT * FROM models WHERE id = ?", arguments: [rollout.candidate]).map(Self.modelRecord)
            let producing = try production.model.flatMap { try Row.fetchOne(db, sql: "SELECT * FROM models WHERE id = ?", arguments: [$0]) }.map(Self.modelRecord)
            let evaluation = try Int64.fetchOne(db, sql: "SELECT id FROM evaluations WHERE candidate = ? AND baseline = ? ORDER BY id DESC LIMIT 1",
                                                arguments: [rollout.candidate, production.model])
            let facts = RegistryRules.RolloutStartFacts(
                production: production, candidateStatus: candidate?.status,
                candidateRecipe: try Self.recipe(db, reference: candidate?.recipe), productionRecipe: try Self.recipe(db, reference: producing?.recipe),
                evaluationAgainstCurrent: evaluation, ships: try Self.shipDecisions(db), activeRollouts: try Self.activeRollouts(db),
                experimentExists: try Self.exists(db, "SELECT 1 FROM experiments WHERE id = ?", rollout.id),
                candidateOwner: candidate?.owner, teams: try Self.teams(db))
            let (started, spec) = try RegistryRules.startRollout(rollout, facts: facts, at: Date().epochMillis)
            let text = try Self.encode(spec)
            try db.execute(sql: """
                INSERT INTO experiments (id, spec, status, phase, created_at, started_at) VALUES (?, ?, 'running', 1, ?, ?)
                """, arguments: [spec.id, text, started.startedAt, started.startedAt])
            try db.execute(sql: "INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (?, 1, ?, ?, ?)",
                           arguments: [spec.id, text, "stage 1: \(Self.percent(started.share))", started.startedAt])
            try db.execute(sql: "INSERT INTO rollouts (id, state, status, started_at) VALUES (?, ?, ?, ?)",
                           arguments: [started.id, try Self.encode(started), started.status.rawValue, started.startedAt])
            try Self.insert(RolloutEvent(rollout: started.id, action: .start, stage: 0, share: started.share, actor: started.actor,
                                         reason: started.reason, analysisHash: nil, at: started.startedAt), db)
            try Self.bumpServingVersion(db)
            return started
        }
    }

    static func percent(_ share: Double) -> String { String(format: "%g%%", share * 100) }

    static func shipDecisions(_ db: Database) throws -> [RegistryRules.ShipDecision] {
        try Row.fetchAll(db, sql: """
            SELECT d.id, d.arm, d.review, e.spec FROM decisions d JOIN experiments e ON e.id = d.experiment
            WHERE d.outcome = 'ship' ORDER BY d.id DESC
            """).map { row in
            RegistryRules.ShipDecision(id: row["id"], arm: row["arm"], spec: try Self.decodeSpec(row["spec"]),
                                       approvers: DecisionReview.decode(row["review"]).approvers)
        }
    }

    static func insert(_ event: RolloutEvent, _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO rollout_events (rollout, action, stage, share, actor, reason, analysis_hash, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [event.rollout, event.action.rawValue, event.stage, event.share, event.actor, event.reason, event.analysisHash, event.at])
    }

    @discardableResult
    public func apply(_ transition: RegistryRules.RolloutTransition) async throws -> RegistryRules.RolloutOutcome {
        try await write { db in
            let outcome = try RegistryRules.transition(transition, rollout: try Self.rollout(db, transition.rollout),
                                                       production: try SQLiteRegistryReads.production(db),
                                                       actorRegistered: try Self.person(db, transition.actor) != nil, at: Date().epochMillis)
            let rollout = outcome.rollout, now = outcome.event.at
            try db.execute(sql: "UPDATE rollouts SET state = ?, status = ? WHERE id = ?",
                           arguments: [try Self.encode(rollout), rollout.status.rawValue, rollout.id])
            try Self.insert(outcome.event, db)
            if let spec = outcome.nextPhase {
                let phase = (try Int.fetchOne(db, sql: "SELECT phase FROM experiments WHERE id = ?", arguments: [rollout.id]) ?? 0) + 1
                let text = try Self.encode(spec)
                try db.execute(sql: "UPDATE experiment_phases SET ended_at = ? WHERE experiment = ? AND ended_at IS NULL", arguments: [now, rollout.id])
                try db.execute(sql: "INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (?, ?, ?, ?, ?)",
                               arguments: [rollout.id, phase, text, "stage \(rollout.stage + 1): \(Self.percent(rollout.share))", now])
                try db.execute(sql: "UPDATE experiments SET spec = ?, phase = ? WHERE id = ?", arguments: [text, phase, rollout.id])
            }
            if outcome.stopExperiment {
                try db.execute(sql: "UPDATE experiments SET status = 'stopped', stopped_at = ? WHERE id = ? AND status = 'running'",
                               arguments: [now, rollout.id])
                try db.execute(sql: "UPDATE experiment_phases SET ended_at = ? WHERE experiment = ? AND ended_at IS NULL", arguments: [now, rollout.id])
            }
            if let promotion = outcome.promotion { try Self.apply(promotion, db) }
            if outcome.nextPhase != nil || outcome.stopExperiment { try Self.bumpServingVersion(db) }
            return outcome
        }
    }

    public func rollout(_ id: String) async throws -> Rollout? {
        try await read { db in try Self.rollout(db, id) }
    }

    public func rollouts() async throws -> [Rollout] {
        try await read { db in
            try String.fetchAll(db, sql: "SELECT state FROM rollouts ORDER BY started_at, id").map {
                try JSONDecoder().decode(Rollout.self, from: Data($0.utf8))
            }
        }
    }

    public func rolloutEvents(of rollout: String?) async throws -> [RolloutEvent] {
        try await read { db in
            let rows = if let rollout {
                try Row.fetchAll(db, sql: "SELECT * FROM rollout_events WHERE rollout = ? ORDER BY id", arguments: [rollout])
            } else {
                try Row.fetchAll(db, sql: "SELECT * FROM rollout_events ORDER BY id")
            }
            return rows.map { row in
                RolloutEvent(id: row["id"], rollout: row["rollout"], action: RolloutAction(rawValue: row["action"]) ?? .abort, stage: row["stage"],
                             share: row["share"], actor: row["actor"], reason: row["reason"], analysisHash: row["analysis_hash"], at: row["at"])
            }
        }
    }

    // MARK: - Cutover

    public func cutoverDelay() async throws -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT cutover_delay_ms FROM serving_state WHERE id = 1") ?? 0 }
    }

    public func setCutoverDelay(milliseconds: Int) async throws {
        let delay = try RegistryRules.cutoverDelay(milliseconds)
        try await write { db in try db.execute(sql: "UPDATE serving_state SET cutover_delay_ms = ? WHERE id = 1", arguments: [delay]) }
    }

    // MARK: - Locks

    public func acquireLock(_ name: String, holder: String, seconds: Int) async throws -> Bool {
        try await write { db in
            let current = try Row.fetchOne(db, sql: "SELECT * FROM locks WHERE name = ?", arguments: [name]).map {
                RegistryLock(name: $0["name"], holder: $0["holder"], expiresAt: $0["expires_at"])
            }
            guard let lock = try RegistryRules.acquire(name, holder: holder, seconds: seconds, current: current, at: Date().epochMillis) else { return false }
            try db.execute(sql: "INSERT INTO locks (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                           arguments: [lock.name, lock.holder, lock.expiresAt])
            return true
        }
    }

    public func releaseLock(_ name: String, holder: String) async throws {
        try await write { db in try db.execute(sql: "DELETE FROM locks WHERE name = ? AND holder = ?", arguments: [name, holder]) }
    }
}
