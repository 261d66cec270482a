public import DuetCore
import Foundation

public enum ModelStatus: String, Codable, Sendable, CaseIterable {
    case candidate, production, retired, rejected
}

public struct ModelRecord: Codable, Sendable, Hashable {
    public var id: String
    public var name: String
    public var kind: String
    public var snapshot: String
    public var parent: String?
    public var createdAt: EpochMillis
    public var status: ModelStatus
    /// The team that owns the model; promoting it as someone outside the team needs that team's approval.
    public var owner: Owner?
    /// "name@version" of the recipe that made it, if a recipe did.
    public var recipe: String?

    public init(id: String, name: String, kind: String, snapshot: String, parent: String?, createdAt: EpochMillis, status: ModelStatus = .candidate,
                owner: Owner? = nil, recipe: String? = nil) {
        self.id = id
        self.name = name
        self.kind = kind
        self.snapshot = snapshot
        self.parent = parent
        self.createdAt = createdAt
        self.status = status
        self.owner = owner
        self.recipe = recipe
    }
}

/// An offline comparison stored for promotion to rest on.
public struct EvaluationRecord: Codable, Sendable, Hashable {
    public var id: Int64?
    public var candidate: String
    /// A model id, or nil when the baseline was popularity trained on the same split.
    public var baseline: String?
    public var baselineKind: String
    public var snapshot: String
    public var split: String
    public var k: Int
    /// JSON of the metrics with their paired CIs.
    public var metricsJSON: String
    public var reportPath: String?
    public var createdAt: EpochMillis

    public init(id: Int64? = nil, candidate: String, baseline: String?, baselineKind: String, snapshot: String, split: String, k: Int,
                metricsJSON: String, reportPath: String?, createdAt: EpochMillis) {
        self.id = id
        self.candidate = candidate
        self.baseline = baseline
        self.baselineKind = baselineKind
        self.snapshot = snapshot
        self.split = split
        self.k = k
        self.metricsJSON = metricsJSON
        self.reportPath = reportPath
        self.createdAt = createdAt
    }
}

public enum ProductionAction: String, Codable, Sendable {
    case promote, rollback
}

/// One change of the production alias. Generations increase strictly, one per change.
public struct ProductionChange: Codable, Sendable, Hashable {
    public var generation: Int
    public var action: ProductionAction
    public var from: String?
    public var to: String
    public var actor: String
    public var reason: String
    public var evaluationID: Int64?
    public var decisionID: Int64?
    /// Set when promotion bypassed the evidence rules; the reason is recorded here.
    public var overrideReason: String?
    public var changedAt: EpochMillis
    /// The staged rollout whose completion made this promotion.
    public var rolloutID: String?

    public init(generation: Int, action: ProductionAction, from: String?, to: String, actor: String, reason: String, evaluationID: Int64?,
                decisionID: Int64?, overrideReason: String?, changedAt: EpochMillis, rolloutID: String? = nil) {
        self.generation = generation
        self.action = action
        self.from = from
        self.to = to
        self.actor = actor
        self.reason = reason
        self.evaluationID = evaluationID
        self.decisionID = decisionID
        self.overrideReason = overrideReason
        self.changedAt = changedAt
        self.rolloutID = rolloutID
    }
}

public struct StoredDecision: Codable, Sendable, Hashable {
    public var id: Int64
    public var decision: Decision
}

public struct Incident: Codable, Sendable, Hashable {
    public var id: Int64?
    public var from: EpochMillis
    public var until: EpochMillis
    public var reason: String
    /// "manual", or "detected" for windows found in the exposure log.
    public var source: String
    public var createdAt: EpochMillis

    public init(id: Int64? = nil, from: EpochMillis, until: EpochMillis, reason: String, source: String = "manual", createdAt: EpochMillis) {
        self.id = id
        self.from = from
        self.until = until
        self.reason = reason
        self.source = source
        self.createdAt = createdAt
    }
}

public struct ExperimentPhase: Codable, Sendable, Hashable {
    public var phase: Int
    public var spec: ExperimentSpec
    public var reason: String
    public var startedAt: EpochMillis
    public var endedAt: EpochMillis?

    public init(phase: Int, spec: ExperimentSpec, reason: String, startedAt: EpochMillis, endedAt: EpochMillis?) {
        self.phase = phase
        self.spec = spec
        self.reason = reason
        self.startedAt = startedAt
        self.endedAt = endedAt
    }
}

/// What a promotion rests on.
public enum PromotionEvidence: Sendable, Hashable {
    /// The rules: an offline evaluation against current production (or popularity, for the first
    /// promotion) and, when something is in production, a ship decision naming this model.
    case rules
    /// Bypass the rules; the reason is recorded.
    case override(reason: String)
}

/// What a decision's review column holds.
struct DecisionReview: Codable {
    var approvers: [String]
    var dissent: [Dissent]

    static func decode(_ text: String?) -> DecisionReview {
        guard let text, let review = try? JSONDecoder().decode(DecisionReview.self, from: Data(text.utf8)) else { return .init(approvers: [], dissent: []) }
        return review
    }
}
