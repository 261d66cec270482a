public import DuetCore

/// Which lane a rollout came down: a refresh of production's recipe (gated offline), or a model
/// shipped by a reviewed experiment decision.
public enum RolloutLane: String, Hashable, Sendable, Codable, CaseIterable {
    case refresh, ship
}

public enum RolloutStatus: String, Hashable, Sendable, Codable, CaseIterable {
    case running, paused, completed
    case rolledBack = "rolled-back"
    case aborted

    public var isActive: Bool { self == .running || self == .paused }
}

public enum RolloutAction: String, Hashable, Sendable, Codable, CaseIterable {
    case start, advance, pause, resume, abort, complete
    case rollBack = "roll-back"
}

/// A staged rollout: the candidate serves a growing share of traffic through an experiment of kind
/// `rollout` (arms `production` and `candidate`), and reaching the last stage (100%) promotes it.
public struct Rollout: Hashable, Sendable, Codable {
    /// Also the id of the experiment Serve reads it as.
    public var id: String
    public var lane: RolloutLane
    /// "name@version" of the recipe that made the candidate (refresh lane).
    public var recipe: String?
    public var candidate: String
    /// Production when the rollout started: the `production` arm, and what the promotion replaces.
    public var baseline: String
    /// The offline gate's evaluation (refresh) or the promotion's evaluation (ship).
    public var evaluationID: Int64?
    public var decisionID: Int64?
    public var stages: [RolloutStage]
    /// Index into `stages` of the current one.
    public var stage: Int
    public var status: RolloutStatus
    public var actor: String
    public var reason: String
    public var startedAt: EpochMillis
    public var stageStartedAt: EpochMillis
    public var endedAt: EpochMillis?
    /// Why it ended, for a rollback or an abort.
    public var outcome: String?

    public init(id: String, lane: RolloutLane, recipe: String?, candidate: String, baseline: String, evaluationID: Int64?, decisionID: Int64?,
                stages: [RolloutStage], stage: Int = 0, status: RolloutStatus = .running, actor: String, reason: String,
                startedAt: EpochMillis, stageStartedAt: EpochMillis? = nil, endedAt: EpochMillis? = nil, outcome: String? = nil) {
        self.id = id
        self.lane = lane
        self.recipe = recipe
        self.candidate = candidate
        self.baseline = baseline
        self.evaluationID = evaluationID
        self.decisionID = decisionID
        self.stages = stages
        self.stage = stage
        self.status = status
        self.actor = actor
        self.reason = reason
        self.startedAt = startedAt
        self.stageStartedAt = stageStartedAt ?? startedAt
        self.endedAt = endedAt
        self.outcome = outcome
    }

    public var share: Double { stages[stage].share }

    public static let productionArm = "production"
    public static let candidateArm = "candidate"
}

/// One step of a rollout's history (append-only).
public struct RolloutEvent: Hashable, Sendable, Codable {
    public var id: Int64?
    public var rollout: String
    public var action: RolloutAction
    /// The stage index after the step.
    public var stage: Int
    public var share: Double
    public var actor: String
    public var reason: String
    /// The analysis the step rests on: the breach a rollback shows, or the clean stage an advance leaves.
    public var analysisHash: String?
    public var at: EpochMillis

    public init(id: Int64? = nil, rollout: String, action: RolloutAction, stage: Int, share: Double, actor: String, reason: String,
                analysisHash: String?, at: EpochMillis) {
        self.id = id
        self.rollout = rollout
        self.action = action
        self.stage = stage
        self.share = share
        self.actor = actor
        self.reason = reason
        self.analysisHash = analysisHash
        self.at = at
    }
}

/// A lock held in the registry, so a scheduled job runs once at a time across machines.
public struct RegistryLock: Hashable, Sendable, Codable {
    public var name: String
    public var holder: String
    public var expiresAt: EpochMillis

    public init(name: String, holder: String, expiresAt: EpochMillis) {
        self.name = name
        self.holder = holder
        self.expiresAt = expiresAt
    }
}

extension RegistryRules {
    // MARK: - Recipes

    /// The version to store: 1 for a new name, the newest + 1 for a change. An unchanged recipe is not
    /// stored again (nil: the newest stays current).
    public static func add(_ recipe: Recipe, newest: Recipe?, author: Person?) throws -> Recipe? {
        try recipe.validate()
        guard author != nil else { throw unregistered(recipe.author) }
        if let newest, newest.sameMethod(as: recipe), newest.refresh == recipe.refresh, newest.owner == recipe.owner { return nil }
        var stored = recipe
        stored.version = (newest?.version ?? 0) + 1
        return stored
    }

    // MARK: - Rollouts

    /// What starting a rollout is judged on, read inside its transaction.
    public struct RolloutStartFacts: Sendable {
        public var production: Production
        public var candidateStatus: ModelStatus?
        /// The recipe reference ("name@version") each model was made by, for the candidate and production.
        public var candidateRecipe: Recipe?
        public var productionRecipe: Recipe?
        /// The newest evaluation of the candidate against current production.
        public var evaluationAgainstCurrent: Int64?
        public var ships: [ShipDecision]
        public var activeRollouts: [String]
        public var experimentExists: Bool
        public var candidateOwner: Owner?
        /// Every registered person's team, by name: the actor must be one of them.
        public var teams: [String: String]

        public init(production: Production, candidateStatus: ModelStatus?, candidateRecipe: Recipe?, productionRecipe: Recipe?,
                    evaluationAgainstCurrent: Int64?, ships: [ShipDecision], activeRollouts: [String], experimentExists: Bool,
                    candidateOwner: Owner?, teams: [String: String]) {
            self.production = production
            self.candidateStatus = candidateStatus
            self.candidateRecipe = candidateRecipe
            self.productionRecipe = productionRecipe
            self.evaluationAgainstCurrent = evaluationAgainstCurrent
            self.ships = ships
            self.activeRollouts = activeRollouts
            self.experimentExists = experimentExists
            self.candidateOwner = candidateOwner
            self.teams = teams
        }
    }

    /// The rollout and the experiment (kind `rollout`, running at the first stage's share) to store.
    ///
    /// The refresh lane needs: the candidate made by a recipe with a refresh policy; production made by
    /// the same recipe (any version with the same method), so only the data changed; and the gate's
    /// evaluation of the candidate against production. The ship lane needs a ship decision for the
    /// candidate from an experiment whose control was production, as a promotion does.
    public static func startRollout(_ rollout: Rollout, facts: RolloutStartFacts, at now: EpochMillis) throws -> (Rollout, ExperimentSpec) {
        try Identifier.validateFileSafe(rollout.id, field: "rollout id")
        try requireText(rollout.actor, "actor")
        try requireText(rollout.reason, "reason")
        guard facts.teams[rollout.actor] != nil else { throw unregistered(rollout.actor) }
        try RolloutStage.validate(rollout.stages)
        let name = rollout.candidate.prefix(12)
        if facts.experimentExists { throw DuetError.conflict("an experiment or rollout named '\(rollout.id)' already exists") }
        if let active = facts.activeRollouts.first {
            throw DuetError.refused("refused: rollout '\(active)' is still active; one rollout at a time moves production. Let it finish, or `duet lab rollout abort \(active)`")
        }
        guard let status = facts.candidateStatus else { throw DuetError.notFound(kind: "model", id: rollout.candidate) }
        if status == .rejected { throw DuetError.refused("model \(name) was rejected and cannot be rolled out") }
        guard let current = facts.production.model else {
            throw DuetError.refused("refused: nothing is in production yet, so there is nothing to roll out against; promote a first model")
        }
        guard current == rollout.baseline else {
            throw DuetError.conflict("production is \(current.prefix(12)), not \(rollout.baseline.prefix(12)) as this rollout was prepared; try again")
        }
        if current == rollout.candidate { throw DuetError.refused("model \(name) is already in production") }
        var started = rollout
        started.stage = 0
        started.status = .running
        started.startedAt = now
        started.stageStartedAt = now
        switch rollout.lane {
        case .refresh:
            guard let recipe = facts.candidateRecipe else {
                throw DuetError.refused("refused: model \(name) was not made by a recipe, so it cannot take the refresh lane; test it in an experiment")
            }
            guard recipe.refresh != nil else {
                throw DuetError.refused("refused: recipe \(recipe.reference) has no refresh policy; its models go through an experiment (`duet lab recipe add … --refresh` allows the lane)")
            }
            guard let produced = facts.productionRecipe, produced.name == recipe.name, produced.sameMethod(as: recipe) else {
                let what = facts.productionRecipe.map { "recipe \($0.reference)" } ?? "no recipe"
                throw DuetError.refused("refused: production \(current.prefix(12)) was made by \(what), not by \(recipe.reference)'s method; a new recipe is a new model and goes through an experiment, a decision and then promotion")
            }
            guard let evaluation = facts.evaluationAgainstCurrent else {
                throw DuetError.refused("refused: model \(name) has no gate evaluation against production \(current.prefix(12))")
            }
            started.recipe = recipe.reference
            started.evaluationID = evaluation
            started.decisionID = nil
        case .ship:
            let (evaluation, decision) = try evidence(model: rollout.candidate, current: current,
                                                      evaluationAgainstCurrent: facts.evaluationAgainstCurrent, ships: facts.ships)
            started.evaluationID = evaluation
            started.decisionID = decision
            let approvers = facts.ships.first { $0.id == decision }?.approvers ?? []
            try requireOwnerConsent(model: rollout.candidate, owner: facts.candidateOwner, actor: rollout.actor, teams: facts.teams, approvers: approvers)
        }
        return (started, experimentSpec(for: started, share: started.share))
    }

    /// Serve reads a rollout as an experiment: production and candidate, weighted by the stage's share.
    /// The candidate arm comes last, so a user in it at 5% stays in it at 25% (its hash range only grows).
    public static func experimentSpec(for rollout: Rollout, share: Double) -> ExperimentSpec {
        ExperimentSpec(id: rollout.id, hypothesis: "\(rollout.lane == .refresh ? "Refresh" : "Shipped model") \(rollout.candidate.prefix(12)) does no harm to listeners",
                       arms: [ExperimentArm(name: Rollout.productionArm, bundleID: rollout.baseline, weight: 1 - share),
                              ExperimentArm(name: Rollout.candidateArm, bundleID: rollout.candidate, weight: share)],
                       seed: rollout.id, successMetrics: [rolloutSuccessMetric],
                       guardrails: rolloutGuardrails, sequentialTuning: rolloutSequentialTuning, author: rollout.actor,
                       approvalsRequired: 0, kind: .rollout, status: .running)
    }

    /// The automatic actor named in every step the Lab's rollout guard takes.
    public static let rolloutGuard = "rollout-guard"

    public static let rolloutSuccessMetric = "plays_per_user"
    public static let rolloutGuardrails = [GuardrailMetric(metric: "skip_rate", margin: 0.05), GuardrailMetric(metric: "play_through_rate", margin: 0.05)]
    /// The always-valid confidence sequence is tuned for this many users, so a stage may be judged at every look.
    public static let rolloutSequentialTuning = 1_000

    public struct RolloutTransition: Sendable, Hashable {
        public var rollout: String
        public var action: RolloutAction
        public var actor: String
        public var reason: String
        public var analysisHash: String?
        /// With a value, refused as a conflict unless the rollout is still at this stage.
        public var expectedStage: Int?

        public init(rollout: String, action: RolloutAction, actor: String, reason: String, analysisHash: String? = nil, expectedStage: Int? = nil) {
            self.rollout = rollout
            self.action = action
            self.actor = actor
            self.reason = reason
            self.analysisHash = analysisHash
            self.expectedStage = expectedStage
        }
    }

    /// Everything one transition writes: the rollout row, the event, and (as the action needs) the
    /// experiment's next phase, its stop, and the production change.
    public struct RolloutOutcome: Sendable, Hashable {
        public var rollout: Rollout
        public var event: RolloutEvent
        public var nextPhase: ExperimentSpec?
        public var stopExperiment: Bool
        public var promotion: ProductionChange?
    }

    /// One step of a rollout. `advance` to a share below 1 changes the experiment's phase; advancing
    /// onto the last stage is `complete`: the experiment stops and production moves to the candidate,
    /// in the same transaction. `roll-back` and `abort` stop the experiment, so every user is back on
    /// production at Serve's next poll. A rollback must cite the analysis that shows the breach.
    public static func transition(_ request: RolloutTransition, rollout current: Rollout?, production: Production,
                                  actorRegistered: Bool, at now: EpochMillis) throws -> RolloutOutcome {
        try requireText(request.actor, "actor")
        try requireText(request.reason, "reason")
        // People act by name; the guard is the one actor that is not a person.
        if request.actor != rolloutGuard, !actorRegistered { throw unregistered(request.actor) }
        if request.actor == rolloutGuard, ![.advance, .complete, .rollBack, .abort].contains(request.action) {
            throw DuetError.invalidValue(field: "actor", reason: "the rollout guard only advances, completes, rolls back or aborts")
        }
        guard let current else { throw DuetError.notFound(kind: "rollout", id: request.rollout) }
        if let expected = request.expectedStage, expected != current.stage {
            throw DuetError.conflict("rollout '\(current.id)' moved to stage \(current.stage + 1) (expected \(expected + 1)) while this step was prepared")
        }
        guard current.status.isActive else {
            throw DuetError.refused("rollout '\(current.id)' is \(current.status.rawValue); nothing more can happen to it")
        }
        var next = current
        var nextPhase: ExperimentSpec?
        var stop = false
        var promotion: ProductionChange?
        switch request.action {
        case .start:
            throw DuetError.invalidValue(field: "action", reason: "a rollout starts once, with `start`")
        case .pause:
            guard current.status == .running else { throw DuetError.refused("rollout '\(current.id)' is already paused") }
            next.status = .paused
        case .resume:
            guard current.status == .paused else { throw DuetError.refused("rollout '\(current.id)' is not paused") }
            next.status = .running
        case .advance, .complete:
            guard current.status == .running else { throw DuetError.refused("rollout '\(current.id)' is paused; resume it first") }
            let target = current.stage + 1
            guard target < current.stages.count else { throw DuetError.refused("rollout '\(current.id)' is at its last stage") }
            let last = target == current.stages.count - 1
            if last != (request.action == .complete) {
                throw DuetError.invalidValue(field: "action", reason: last ? "the next stage is 100%: that step is `complete`" : "`complete` is only the step onto the last stage")
            }
            next.stage = target
            next.stageStartedAt = now
            if last {
                guard production.model == current.baseline else {
                    throw DuetError.conflict("production moved to \(production.model?.prefix(12) ?? "nothing") during rollout '\(current.id)', which was measured against \(current.baseline.prefix(12)); abort it and start again")
                }
                next.status = .completed
                next.endedAt = now
                stop = true
                promotion = ProductionChange(generation: production.generation + 1, action: .promote, from: production.model, to: current.candidate,
                                             actor: request.actor, reason: request.reason, evaluationID: current.evaluationID,
                                             decisionID: current.decisionID, overrideReason: nil, changedAt: now, rolloutID: current.id)
            } else {
                nextPhase = experimentSpec(for: next, share: next.share)
            }
        case .abort:
            next.status = .aborted
            next.endedAt = now
            next.outcome = request.reason
            stop = true
        case .rollBack:
            guard let hash = request.analysisHash, !hash.isEmpty else {
                throw DuetError.invalidValue(field: "analysis", reason: "an automatic rollback cites the analysis that shows the breach")
            }
            next.status = .rolledBack
            next.endedAt = now
            next.outcome = request.reason
            stop = true
        }
        let event = RolloutEvent(rollout: current.id, action: request.action, stage: next.stage, share: next.share, actor: request.actor,
                                 reason: request.reason, analysisHash: request.analysisHash, at: now)
        return RolloutOutcome(rollout: next, event: event, nextPhase: nextPhase, stopExperiment: stop, promotion: promotion)
    }

    // MARK: - Cutover

    /// Two of Serve's default 1 s polls: every replica sees the change and loads ahead before it activates.
    public static let defaultCutoverDelayMilliseconds = 2_000

    public static func cutoverDelay(_ milliseconds: Int) throws -> Int {
        guard (0...600_000).contains(milliseconds) else {
            throw DuetError.invalidValue(field: "cutover delay", reason: "\(milliseconds) ms must be 0–600000 (0 switches each replica on sight)")
        }
        return milliseconds
    }

    // MARK: - Locks

    /// The lock row to write, or nil when someone else holds it and it has not expired.
    public static func acquire(_ name: String, holder: String, seconds: Int, current: RegistryLock?, at now: EpochMillis) throws -> RegistryLock? {
        try Identifier.validate(name, field: "lock name")
        try requireText(holder, "holder")
        guard seconds > 0 else { throw DuetError.invalidValue(field: "lock duration", reason: "must be > 0 s") }
        if let current, current.holder != holder, current.expiresAt > now { return nil }
        return RegistryLock(name: name, holder: holder, expiresAt: now + EpochMillis(seconds) * 1_000)
    }
}
