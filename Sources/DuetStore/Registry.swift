public import DuetCore

/// The registry as the Lab holds it: models, offline evaluations, experiments and their phases,
/// decisions, incidents, and the production alias with its full history. Only the Lab is handed
/// one; Serve gets the `ServingSource` this refines. Every change is one transaction in which the
/// backend reads what `RegistryRules` needs, applies the rule, and writes what it returns.
public protocol LabRegistry: ServingSource {
    // Models
    func register(_ model: ModelRecord) async throws
    func model(_ id: String) async throws -> ModelRecord?
    func models() async throws -> [ModelRecord]
    func setStatus(_ status: ModelStatus, of id: String) async throws

    // Offline evaluations
    @discardableResult func add(_ evaluation: EvaluationRecord) async throws -> Int64
    func evaluations(candidate: String?) async throws -> [EvaluationRecord]

    // Production alias
    func production() async throws -> (generation: Int, model: String?)
    func history() async throws -> [ProductionChange]
    /// Moves the alias (see `RegistryRules.promote`). Call it through the Lab's promotion, which
    /// checks the bundle and the evidence's strength first.
    @discardableResult
    func promote(_ request: RegistryRules.PromotionRequest) async throws -> ProductionChange
    /// Moves the alias back one step, or to a model that served before (see `RegistryRules.rollback`).
    @discardableResult
    func rollback(_ request: RegistryRules.RollbackRequest) async throws -> ProductionChange

    // Experiments
    func create(_ experiment: ExperimentSpec) async throws
    func experiment(_ id: String) async throws -> ExperimentRecord?
    func experiments() async throws -> [ExperimentRecord]
    func phases(of id: String) async throws -> [ExperimentPhase]
    func start(experiment id: String) async throws
    func stop(experiment id: String) async throws
    /// Changes weights or arms of a running experiment: a new phase, recorded with its reason.
    func changePhase(of id: String, to spec: ExperimentSpec, reason: String) async throws

    // People and owners
    func add(_ person: Person) async throws
    func people() async throws -> [Person]
    /// The SHA-256 of the person's dashboard sign-in token; nil clears it.
    func setSignInTokenHash(_ hash: String?, for name: String) async throws
    func signInTokenHash(for name: String) async throws -> String?
    /// Sets or clears the team owning a model.
    func setOwner(_ owner: Owner?, ofModel id: String) async throws
    /// Sets the team owning a metric (its definition and its alerts); nil clears it.
    func setOwner(_ owner: Owner?, ofMetric metric: String) async throws
    func metricOwners() async throws -> [String: Owner]

    // Review (append-only; see `RegistryRules.review`)
    /// Adds the entry, moving a stopped experiment into review, and returns it as stored (with its id).
    @discardableResult func add(_ entry: ReviewEntry) async throws -> ReviewEntry
    /// The entries of one experiment's review, or of every review, oldest first.
    func review(of experiment: String?) async throws -> [ReviewEntry]

    // Webhooks
    @discardableResult func add(_ webhook: WebhookRecord) async throws -> Int64
    func webhooks() async throws -> [WebhookRecord]
    func setWebhook(_ id: Int64, active: Bool) async throws
    func add(_ attempt: WebhookAttempt) async throws
    /// The newest attempts first.
    func webhookAttempts(limit: Int) async throws -> [WebhookAttempt]

    // Recipes (append-only: a change is a new version; see `RegistryRules.add(_:newest:author:)`)
    /// Stores the recipe as its name's next version and returns it; an unchanged recipe returns the newest as is.
    @discardableResult func add(_ recipe: Recipe) async throws -> Recipe
    /// Every version of every recipe, by name then version.
    func recipes() async throws -> [Recipe]
    /// One version, or the newest when `version` is nil.
    func recipe(_ name: String, version: Int?) async throws -> Recipe?

    // Staged rollouts (see `RegistryRules.startRollout` and `RegistryRules.transition`)
    /// Starts the rollout and its experiment at the first stage, in one transaction.
    @discardableResult func start(_ rollout: Rollout) async throws -> Rollout
    /// One step; everything it changes (the rollout, its event, the experiment, production) in one transaction.
    @discardableResult func apply(_ transition: RegistryRules.RolloutTransition) async throws -> RegistryRules.RolloutOutcome
    func rollout(_ id: String) async throws -> Rollout?
    /// Every rollout, oldest first.
    func rollouts() async throws -> [Rollout]
    /// The steps of one rollout, or of all, oldest first.
    func rolloutEvents(of rollout: String?) async throws -> [RolloutEvent]

    // Similarity indexes (see `RegistryRules.publishIndex`): immutable artefacts, and per name an
    // alias with its own generation and append-only history
    func register(_ index: IndexArtefactRecord) async throws
    func indexArtefact(_ id: String) async throws -> IndexArtefactRecord?
    /// Every registered artefact, oldest first.
    func indexArtefacts() async throws -> [IndexArtefactRecord]
    @discardableResult func publish(_ request: RegistryRules.IndexPublication) async throws -> IndexChange
    @discardableResult func rollbackIndex(_ request: RegistryRules.IndexPublication) async throws -> IndexChange
    /// One name's history, or every name's, oldest first.
    func indexHistory(_ name: String?) async throws -> [IndexChange]

    // Cutover: every replica switches to a new serving version at its activation time
    /// Milliseconds between a change and its activation on every replica.
    func cutoverDelay() async throws -> Int
    func setCutoverDelay(milliseconds: Int) async throws

    // Locks, so a scheduled job runs once at a time across machines
    /// Takes or renews the lock for `seconds`; false when someone else holds it.
    func acquireLock(_ name: String, holder: String, seconds: Int) async throws -> Bool
    func releaseLock(_ name: String, holder: String) async throws

    // Decisions and incidents
    /// Records a decision under `RegistryRules.record`, with the approvers and dissent it computes.
    @discardableResult func record(_ decision: Decision) async throws -> Int64
    func decisions(experiment: String?) async throws -> [StoredDecision]
    @discardableResult func add(_ incident: Incident) async throws -> Int64
    func incidents() async throws -> [Incident]
}
