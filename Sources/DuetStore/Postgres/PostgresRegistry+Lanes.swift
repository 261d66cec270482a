#if Postgres
public import DuetCore
import Foundation
import Logging
import PostgresNIO

/// Recipes, staged rollouts and locks on PostgreSQL: storage only, the rules are `RegistryRules`'.
extension PostgresRegistry {
    // MARK: - Recipes

    static func decodeRecipe(_ spec: String, version: Int32) throws -> Recipe {
        var recipe = try JSONDecoder().decode(Recipe.self, from: Data(spec.utf8))
        recipe.version = Int(version)
        return recipe
    }

    static func recipe(_ connection: PostgresConnection, name: String, version: Int?, logger: Logger) async throws -> Recipe? {
        let row = if let version {
            try await first(connection, "SELECT spec, version FROM recipes WHERE name = \(name) AND version = \(Int32(version))",
                            as: (String, Int32).self, logger: logger)
        } else {
            try await first(connection, "SELECT spec, version FROM recipes WHERE name = \(name) ORDER BY version DESC LIMIT 1",
                            as: (String, Int32).self, logger: logger)
        }
        return try row.map { try decodeRecipe($0.0, version: $0.1) }
    }

    static func recipe(_ connection: PostgresConnection, reference: String?, logger: Logger) async throws -> Recipe? {
        guard let reference else { return nil }
        let (name, version) = Recipe.parseReference(reference)
        guard let version else { return nil }
        return try await recipe(connection, name: name, version: version, logger: logger)
    }

    @discardableResult
    public func add(_ recipe: Recipe) async throws -> Recipe {
        let logger = self.logger
        return try await write { connection in
            let newest = try await Self.recipe(connection, name: recipe.name, version: nil, logger: logger)
            let author = try await Self.person(connection, recipe.author, logger: logger)
            guard let stored = try RegistryRules.add(recipe, newest: newest, author: author) else { return newest! }
            let spec = try SQLiteRegistry.encode(stored)
            try await connection.query("""
                INSERT INTO recipes (name, version, spec, author, created_at)
                VALUES (\(stored.name), \(Int32(stored.version)), \(spec), \(stored.author), \(stored.createdAt))
                """, logger: logger)
            return stored
        }
    }

    public func recipes() async throws -> [Recipe] {
        try await collect("SELECT spec, version FROM recipes ORDER BY name, version") { row in
            let r = try row.decode((String, Int32).self)
            return try Self.decodeRecipe(r.0, version: r.1)
        }
    }

    public func recipe(_ name: String, version: Int?) async throws -> Recipe? {
        let logger = self.logger
        return try await database.client.withConnection { try await Self.recipe($0, name: name, version: version, logger: logger) }
    }

    // MARK: - Rollouts

    static func activeRollouts(_ connection: PostgresConnection, logger: Logger) async throws -> [String] {
        var ids: [String] = []
        for try await id in try await connection.query("SELECT id FROM rollouts WHERE status IN ('running', 'paused') ORDER BY started_at",
                                                       logger: logger).decode(String.self) { ids.append(id) }
        return ids
    }

    static func rollout(_ connection: PostgresConnection, _ id: String, logger: Logger) async throws -> Rollout? {
        try await first(connection, "SELECT state FROM rollouts WHERE id = \(id)", as: String.self, logger: logger).map {
            try JSONDecoder().decode(Rollout.self, from: Data($0.utf8))
        }
    }

    static func shipDecisions(_ connection: PostgresConnection, logger: Logger) async throws -> [RegistryRules.ShipDecision] {
        var ships: [RegistryRules.ShipDecision] = []
        for try await (id, arm, review, spec) in try await connection.query("""
            SELECT d.id, d.arm, d.review, e.spec FROM decisions d JOIN experiments e ON e.id = d.experiment WHERE d.outcome = 'ship' ORDER BY d.id DESC
            """, logger: logger).decode((Int64, String?, String?, String).self) {
            ships.append(.init(id: id, arm: arm, spec: try decodeSpec(spec), approvers: DecisionReview.decode(review).approvers))
        }
        return ships
    }

    static func modelRecord(_ connection: PostgresConnection, _ id: String?, logger: Logger) async throws -> ModelRecord? {
        guard let id else { return nil }
        return try await first(connection, PostgresQuery(unsafeSQL: "SELECT \(modelColumns) FROM models WHERE id = $1", binds: try binds(id)),
                               as: ModelRow.self, logger: logger).map(model)
    }

    static func insert(_ event: RolloutEvent, _ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO rollout_events (rollout, action, stage, share, actor, reason, analysis_hash, at)
            VALUES (\(event.rollout), \(event.action.rawValue), \(Int32(event.stage)), \(event.share), \(event.actor), \(event.reason),
                    \(event.analysisHash), \(event.at))
            """, logger: logger)
    }

    @discardableResult
    public func start(_ rollout: Rollout) async throws -> Rollout {
        let logger = self.logger
        return try await write { connection in
            let production = try await PostgresRegistryReads.production(connection, logger: logger)
            let candidate = try await Self.modelRecord(connection, rollout.candidate, logger: logger)
            let producing = try await Self.modelRecord(connection, production.model, logger: logger)
            let evaluation = try await Self.first(connection, """
                SELECT id FROM evaluations WHERE candidate = \(rollout.candidate) AND baseline = \(production.model) ORDER BY id DESC LIMIT 1
                """, as: Int64.self, logger: logger)
            let facts = RegistryRules.RolloutStartFacts(
                production: production, candidateStatus: candidate?.status,
                candidateRecipe: try await Self.recipe(connection, reference: candidate?.recipe, logger: logger),
                productionRecipe: try await Self.recipe(connection, reference: producing?.recipe, logger: logger),
                evaluationAgainstCurrent: evaluation, ships: try await Self.shipDecisions(connection, logger: logger),
                activeRollouts: try await Self.activeRollouts(connection, logger: logger),
                experimentExists: try await Self.first(connection, "SELECT 1 FROM experiments WHERE id = \(rollout.id)", as: Int32.self, logger: logger) != nil,
                candidateOwner: candidate?.owner, teams: try await Self.teams(connection, logger: logger))
            let (started, spec) = try RegistryRules.startRollout(rollout, facts: facts, at: Date().epochMillis)
            let text = try SQLiteRegistry.encode(spec), state = try SQLiteRegistry.encode(started)
            let reason = "stage 1: \(SQLiteRegistry.percent(started.share))"
            try await connection.query("""
                INSERT INTO experiments (id, spec, status, phase, created_at, started_at) VALUES (\(spec.id), \(text), 'running', 1, \(started.startedAt), \(started.startedAt))
                """, logger: logger)
            try await connection.query("""
                INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (\(spec.id), 1, \(text), \(reason), \(started.startedAt))
                """, logger: logger)
            try await connection.query("""
                INSERT INTO rollouts (id, state, status, started_at) VALUES (\(started.id), \(state), \(started.status.rawValue), \(started.startedAt))
                """, logger: logger)
            try await Self.insert(RolloutEvent(rollout: started.id, action: .start, stage: 0, share: started.share, actor: started.actor,
                                               reason: started.reason, analysisHash: nil, at: started.startedAt), connection, logger: logger)
            try await Self.bump(connection, logger: logger)
            return started
        }
    }

    @discardableResult
    public func apply(_ transition: RegistryRules.RolloutTransition) async throws -> RegistryRules.RolloutOutcome {
        let logger = self.logger
        return try await write { connection in
            let outcome = try RegistryRules.transition(transition, rollout: try await Self.rollout(connection, transition.rollout, logger: logger),
                                                       production: try await PostgresRegistryReads.production(connection, logger: logger),
                                                       actorRegistered: try await Self.person(connection, transition.actor, logger: logger) != nil,
                                                       at: Date().epochMillis)
            let rollout = outcome.rollout, now = outcome.event.at
            let state = try SQLiteRegistry.encode(rollout)
            try await connection.query("UPDATE rollouts SET state = \(state), status = \(rollout.status.rawValue) WHERE id = \(rollout.id)", logger: logger)
            try await Self.insert(outcome.event, connection, logger: logger)
            if let spec = outcome.nextPhase {
                let phase = (try await Self.first(connection, "SELECT phase FROM experiments WHERE id = \(rollout.id)", as: Int32.self, logger: logger) ?? 0) + 1
                let text = try SQLiteRegistry.encode(spec)
                let reason = "stage \(rollout.stage + 1): \(SQLiteRegistry.percent(rollout.share))"
                try await connection.query("UPDATE experiment_phases SET ended_at = \(now) WHERE experiment = \(rollout.id) AND ended_at IS NULL", logger: logger)
                try await connection.query("""
                    INSERT INTO experiment_phases (experiment, phase, spec, reason, started_at) VALUES (\(rollout.id), \(phase), \(text), \(reason), \(now))
                    """, logger: logger)
                try await connection.query("UPDATE experiments SET spec = \(text), phase = \(phase) WHERE id = \(rollout.id)", logger: logger)
            }
            if outcome.stopExperiment {
                try await connection.query("UPDATE experiments SET status = 'stopped', stopped_at = \(now) WHERE id = \(rollout.id) AND status = 'running'",
                                           logger: logger)
                try await connection.query("UPDATE experiment_phases SET ended_at = \(now) WHERE experiment = \(rollout.id) AND ended_at IS NULL", logger: logger)
            }
            if let promotion = outcome.promotion { try await Self.apply(promotion, connection, logger: logger) }
            if outcome.nextPhase != nil || outcome.stopExperiment { try await Self.bump(connection, logger: logger) }
            return outcome
        }
    }

    public func rollout(_ id: String) async throws -> Rollout? {
        let logger = self.logger
        return try await database.client.withConnection { try await Self.rollout($0, id, logger: logger) }
    }

    public func rollouts() async throws -> [Rollout] {
        try await collect("SELECT state FROM rollouts ORDER BY started_at, id") { row in
            try JSONDecoder().decode(Rollout.self, from: Data(try row.decode(String.self).utf8))
        }
    }

    public func rolloutEvents(of rollout: String?) async throws -> [RolloutEvent] {
        var query = DynamicQuery("SELECT id, rollout, action, stage, share, actor, reason, analysis_hash, at FROM rollout_events")
        if let rollout { query.sql += " WHERE rollout = \(try query.bind(rollout))" }
        query.sql += " ORDER BY id"
        return try await collect(query.query) { row in
            let r = try row.decode((Int64, String, String, Int32, Double, String, String, String?, Int64).self)
            return RolloutEvent(id: r.0, rollout: r.1, action: RolloutAction(rawValue: r.2) ?? .abort, stage: Int(r.3), share: r.4, actor: r.5,
                                reason: r.6, analysisHash: r.7, at: r.8)
        }
    }

    // MARK: - Cutover

    public func cutoverDelay() async throws -> Int {
        let logger = self.logger
        return try await database.client.withConnection { connection in
            Int(try await Self.first(connection, "SELECT cutover_delay_ms FROM serving_state WHERE id = 1", as: Int32.self, logger: logger) ?? Int32(0))
        }
    }

    public func setCutoverDelay(milliseconds: Int) async throws {
        let delay = Int32(try RegistryRules.cutoverDelay(milliseconds))
        let logger = self.logger
        try await write { connection in
            try await connection.query("UPDATE serving_state SET cutover_delay_ms = \(delay) WHERE id = 1", logger: logger)
        }
    }

    // MARK: - Locks

    public func acquireLock(_ name: String, holder: String, seconds: Int) async throws -> Bool {
        let logger = self.logger
        return try await write { connection in
            let current = try await Self.first(connection, "SELECT name, holder, expires_at FROM locks WHERE name = \(name)",
                                               as: (String, String, Int64).self, logger: logger).map { RegistryLock(name: $0.0, holder: $0.1, expiresAt: $0.2) }
            guard let lock = try RegistryRules.acquire(name, holder: holder, seconds: seconds, current: current, at: Date().epochMillis) else { return false }
            try await connection.query("""
                INSERT INTO locks (name, holder, expires_at) VALUES (\(lock.name), \(lock.holder), \(lock.expiresAt))
                ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                """, logger: logger)
            return true
        }
    }

    public func releaseLock(_ name: String, holder: String) async throws {
        let logger = self.logger
        try await write { connection in
            try await connection.query("DELETE FROM locks WHERE name = \(name) AND holder = \(holder)", logger: logger)
        }
    }
}
#endif
