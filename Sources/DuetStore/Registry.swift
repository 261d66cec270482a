public import DuetCore

/// The registry the Lab writes and Serve reads: models, offline evaluations, experiments and
/// their phases, decisions, incidents, and the production alias with its full history.
/// Every change is one transaction. The SQLite implementation is the embedded default; a
/// PostgreSQL one satisfies the same protocol.
public protocol Registry: Sendable {
    var isReadOnly: Bool { get }

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
    /// Moves the alias to `model`. With `expectedGeneration`, refuses with a conflict if another
    /// change landed first.
    @discardableResult
    func promote(_ model: String, actor: String, reason: String, evidence: PromotionEvidence,
                 expectedGeneration: Int?) async throws -> ProductionChange
    /// Moves the alias back one step, or to `target`, which must have served before.
    @discardableResult
    func rollback(to target: String?, actor: String, reason: String, expectedGeneration: Int?) async throws -> ProductionChange

    // What Serve polls
    func servingVersion() async throws -> Int
    func servingConfiguration() async throws -> ServingConfiguration

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
