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

    // Decisions and incidents
    @discardableResult func record(_ decision: Decision) async throws -> Int64
    func decisions(experiment: String?) async throws -> [StoredDecision]
    @discardableResult func add(_ incident: Incident) async throws -> Int64
    func incidents() async throws -> [Incident]
}
