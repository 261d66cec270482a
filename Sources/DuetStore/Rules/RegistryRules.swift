public import DuetCore

/// Every rule of the registry, written once, as pure functions over plain values: each takes what
/// the registry holds (read by the backend inside its transaction) and the request, and returns
/// the row to write or throws a refusal that names the reason. Backends hold storage code only, so
/// SQLite, PostgreSQL and any later backend refuse exactly the same things with the same words.
public enum RegistryRules {
    public static func requireText(_ value: String, _ field: String) throws(DuetError) {
        if value.allSatisfy(\.isWhitespace) {
            throw .invalidValue(field: field, reason: "must not be empty")
        }
    }

    // MARK: - Models

    public static func register(_ model: ModelRecord, alreadyRegistered: Bool) throws {
        try Identifier.validate(model.id, field: "model id")
        if alreadyRegistered { throw DuetError.conflict("model \(model.id) is already registered") }
        if model.status == .production { throw DuetError.refused("a model enters production only through promotion") }
        if let parent = model.parent { try Identifier.validate(parent, field: "parent model id") }
    }

    /// `current` is nil when no such model is registered.
    public static func changeStatus(of id: String, from current: ModelStatus?, to next: ModelStatus) throws {
        guard let current else { throw DuetError.notFound(kind: "model", id: id) }
        if current == .production || next == .production {
            throw DuetError.refused("production status changes only through promote and rollback")
        }
    }

    // MARK: - Production alias

    /// The production alias as the newest history row has it: generation 0 and no model before the first promotion.
    public struct Production: Sendable, Hashable {
        public var generation: Int
        public var model: String?

        public init(generation: Int, model: String?) {
            self.generation = generation
            self.model = model
        }
    }

    public struct PromotionRequest: Sendable, Hashable {
        public var model: String
        public var actor: String
        public var reason: String
        public var evidence: PromotionEvidence
        /// With a value, the promotion is refused as a conflict if another change landed first.
        public var expectedGeneration: Int?

        public init(model: String, actor: String, reason: String, evidence: PromotionEvidence, expectedGeneration: Int?) {
            self.model = model
            self.actor = actor
            self.reason = reason
            self.evidence = evidence
            self.expectedGeneration = expectedGeneration
        }
    }

    /// A recorded ship decision with the spec of the experiment it decided.
    public struct ShipDecision: Sendable {
        public var id: Int64
        public var arm: String?
        public var spec: ExperimentSpec
        public var approvers: [String]

        public init(id: Int64, arm: String?, spec: ExperimentSpec, approvers: [String] = []) {
            self.id = id
            self.arm = arm
            self.spec = spec
            self.approvers = approvers
        }
    }

    /// What a promotion is judged on, read inside its transaction.
    public struct PromotionFacts: Sendable {
        public var production: Production
        /// Nil when the model is not registered.
        public var candidateStatus: ModelStatus?
        /// The newest evaluation of the candidate against current production (with nothing in
        /// production: the newest evaluation of the candidate at all).
        public var evaluationAgainstCurrent: Int64?
        /// Ship decisions, newest first.
        public var ships: [ShipDecision]
        /// The team owning the candidate, if any.
        public var candidateOwner: Owner?
        /// Every registered person's team, by name.
        public var teams: [String: String]
        /// A running or paused rollout: production moves through it, or after it is aborted.
        public var activeRollout: String?

        public init(production: Production, candidateStatus: ModelStatus?, evaluationAgainstCurrent: Int64?, ships: [ShipDecision],
                    candidateOwner: Owner? = nil, teams: [String: String] = [:], activeRollout: String? = nil) {
            self.production = production
            self.candidateStatus = candidateStatus
            self.evaluationAgainstCurrent = evaluationAgainstCurrent
            self.ships = ships
            self.candidateOwner = candidateOwner
            self.teams = teams
            self.activeRollout = activeRollout
        }
    }

    /// The history row a promotion writes. Under `.rules` it must rest on an offline evaluation
    /// against the current production (against popularity for the first promotion) and, when a
    /// model is in production, on a ship decision for this model from an experiment whose control
    /// was that production model. `.override` bypasses the evidence, and its reason is recorded.
    public static func promote(_ request: PromotionRequest, facts: PromotionFacts, at now: EpochMillis) throws -> ProductionChange {
        let model = request.model, name = model.prefix(12)
        try requireText(request.actor, "actor")
        try requireText(request.reason, "reason")
        let production = facts.production
        try requireGeneration(request.expectedGeneration, production, while: "this promotion was prepared")
        guard let status = facts.candidateStatus else { throw DuetError.notFound(kind: "model", id: model) }
        if status == .rejected { throw DuetError.refused("model \(name) was rejected and cannot be promoted") }
        if production.model == model {
            throw DuetError.refused("model \(name) is already in production (generation \(production.generation))")
        }
        if let rollout = facts.activeRollout {
            throw DuetError.refused("refused: rollout '\(rollout)' is moving production in stages; let it finish, or `duet lab rollout abort \(rollout)` first")
        }
        var evaluationID: Int64?, decisionID: Int64?, overrideReason: String?
        switch request.evidence {
        case let .override(text):
            try requireText(text, "override reason")
            overrideReason = text
        case .rules:
            (evaluationID, decisionID) = try evidence(model: model, current: production.model,
                                                      evaluationAgainstCurrent: facts.evaluationAgainstCurrent, ships: facts.ships)
        }
        let approvers = facts.ships.first { $0.id == decisionID }?.approvers ?? []
        try requireOwnerConsent(model: model, owner: facts.candidateOwner, actor: request.actor, teams: facts.teams, approvers: approvers)
        return ProductionChange(generation: production.generation + 1, action: .promote, from: production.model, to: model,
                                actor: request.actor, reason: request.reason, evaluationID: evaluationID, decisionID: decisionID,
                                overrideReason: overrideReason, changedAt: now)
    }

    static func evidence(model: String, current: String?, evaluationAgainstCurrent: Int64?,
                         ships: [ShipDecision]) throws -> (evaluation: Int64?, decision: Int64?) {
        let name = model.prefix(12)
        guard let current else {
            guard let evaluationAgainstCurrent else {
                throw DuetError.refused("refused: model \(name) has no offline evaluation. Run `duet lab evaluate --candidate \(name) --baseline popularity` first, or pass --override --reason \"…\"")
            }
            return (evaluationAgainstCurrent, nil)
        }
        guard let evaluationAgainstCurrent else {
            throw DuetError.refused("refused: model \(name) has no offline evaluation against the current production model \(current.prefix(12)). Run `duet lab evaluate --candidate \(name) --baseline production` first, or pass --override --reason \"…\"")
        }
        if let ship = shipDecision(for: model, current: current, among: ships) {
            return (evaluationAgainstCurrent, ship.id)
        }
        if let stale = ships.first(where: { Self.ships(model, $0) }) {
            throw DuetError.refused("refused: decision #\(stale.id) ships model \(name) against control \(stale.spec.control.bundleID.prefix(12)), which is not the current production model \(current.prefix(12)); test it against production first, or pass --override --reason \"…\"")
        }
        throw DuetError.refused("refused: no recorded decision ships model \(name). Record one with `duet lab decide EXP --outcome ship …` after an A/B test, or pass --override --reason \"…\"")
    }

    /// The newest decision that ships `model` from an experiment whose control was `current`.
    public static func shipDecision(for model: String, current: String, among ships: [ShipDecision]) -> ShipDecision? {
        ships.first { self.ships(model, $0) && $0.spec.control.bundleID == current }
    }

    static func ships(_ model: String, _ ship: ShipDecision) -> Bool {
        ship.spec.arms.contains { $0.name == ship.arm && $0.bundleID == model }
    }

    public struct RollbackRequest: Sendable, Hashable {
        /// A model that served before; nil means the one before the current.
        public var target: String?
        public var actor: String
        public var reason: String
        public var expectedGeneration: Int?

        public init(target: String?, actor: String, reason: String, expectedGeneration: Int?) {
            self.target = target
            self.actor = actor
            self.reason = reason
            self.expectedGeneration = expectedGeneration
        }
    }

    public struct RollbackFacts: Sendable {
        public var production: Production
        /// The model the current generation replaced (nil for the first promotion).
        public var previous: String?
        /// Every model the alias has pointed at.
        public var served: Set<String>

        public init(production: Production, previous: String?, served: Set<String>) {
            self.production = production
            self.previous = previous
            self.served = served
        }
    }

    /// The history row a rollback writes: back one step, or to a model that served before.
    public static func rollback(_ request: RollbackRequest, facts: RollbackFacts, at now: EpochMillis) throws -> ProductionChange {
        try requireText(request.actor, "actor")
        try requireText(request.reason, "reason")
        let production = facts.production
        guard let current = production.model else { throw DuetError.refused("nothing is in production, so there is nothing to roll back") }
        try requireGeneration(request.expectedGeneration, production, while: "this rollback was prepared")
        let destination: String
        if let target = request.target {
            guard facts.served.contains(target) else {
                throw DuetError.refused("model \(target.prefix(12)) never served in production; roll back only to a model that did")
            }
            destination = target
        } else {
            guard let previous = facts.previous else {
                throw DuetError.refused("generation \(production.generation) was the first promotion; there is no earlier model to roll back to")
            }
            destination = previous
        }
        if destination == current { throw DuetError.refused("model \(destination.prefix(12)) is already in production") }
        return ProductionChange(generation: production.generation + 1, action: .rollback, from: current, to: destination,
                                actor: request.actor, reason: request.reason, evaluationID: nil, decisionID: nil,
                                overrideReason: nil, changedAt: now)
    }

    static func requireGeneration(_ expected: Int?, _ production: Production, while what: String) throws {
        if let expected, expected != production.generation {
            throw DuetError.conflict("production moved to generation \(production.generation) (expected \(expected)) while \(what); check `duet lab history` and try again")
        }
    }

    // MARK: - Experiments

    /// The spec to store as a draft. `registered` holds those of the arms' bundle ids the registry knows.
    public static func create(_ spec: ExperimentSpec, exists: Bool, registered: Set<String>) throws -> ExperimentSpec {
        try spec.validate()
        if exists { throw DuetError.conflict("experiment '\(spec.id)' already exists") }
        try requireRegistered(spec.arms, registered)
        var draft = spec
        draft.status = .draft
        return draft
    }

    /// A status change (start, stop, decide); `current` is nil when no such experiment exists.
    public static func move(_ id: String, from current: ExperimentStatus?, to next: ExperimentStatus) throws {
        guard let current else { throw DuetError.notFound(kind: "experiment", id: id) }
        guard current.canMove(to: next) else {
            throw DuetError.refused("experiment '\(id)' is \(current.rawValue) and cannot become \(next.rawValue)")
        }
    }

    /// The spec and number of the next phase of a running experiment.
    public static func changePhase(of id: String, to spec: ExperimentSpec, reason: String,
                                   current: (status: ExperimentStatus, phase: Int)?, registered: Set<String>) throws -> (spec: ExperimentSpec, phase: Int) {
        try requireText(reason, "reason")
        try spec.validate()
        guard spec.id == id else { throw DuetError.invalidValue(field: "experiment id", reason: "a phase cannot rename the experiment") }
        guard let current else { throw DuetError.notFound(kind: "experiment", id: id) }
        guard current.status == .running else {
            throw DuetError.refused("only a running experiment changes phase; '\(id)' is \(current.status.rawValue)")
        }
        try requireRegistered(spec.arms, registered)
        var running = spec
        running.status = .running
        return (running, current.phase + 1)
    }

    static func requireRegistered(_ arms: [ExperimentArm], _ registered: Set<String>) throws {
        for arm in arms where !registered.contains(arm.bundleID) {
            throw DuetError.notFound(kind: "model for arm '\(arm.name)'", id: arm.bundleID)
        }
    }

    // MARK: - Decisions and incidents

    public static func add(_ incident: Incident) throws {
        guard incident.from < incident.until else {
            throw DuetError.invalidValue(field: "incident window", reason: "--from must be before --to")
        }
        try requireText(incident.reason, "reason")
    }
}
