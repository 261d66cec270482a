/// A GrowthBook-style namespace slice: experiments in one namespace with disjoint
/// ranges never share a user.
public struct NamespaceRange: Hashable, Sendable, Codable {
    public var id: String
    public var start: Double
    public var end: Double

    public init(id: String, start: Double, end: Double) {
        self.id = id
        self.start = start
        self.end = end
    }
}

public struct ExperimentArm: Hashable, Sendable, Codable {
    public var name: String
    public var bundleID: String
    public var weight: Double

    public init(name: String, bundleID: String, weight: Double) {
        self.name = name
        self.bundleID = bundleID
        self.weight = weight
    }

    enum CodingKeys: String, CodingKey { case name, bundleID = "bundleId", weight }
}

/// A guardrail passes when the treatment is shown non-inferior: its relative change
/// is significantly above `-margin` (e.g. margin 0.02 tolerates at most a 2% drop).
public struct GuardrailMetric: Hashable, Sendable, Codable {
    public var metric: String
    public var margin: Double

    public init(metric: String, margin: Double) {
        self.metric = metric
        self.margin = margin
    }
}

public enum ExperimentStatus: String, Hashable, Sendable, Codable, CaseIterable {
    case draft, running, stopped
    case inReview = "in-review"
    case decided

    /// The lifecycle only moves forward: draft → running → stopped → in review → decided. The first
    /// review entry moves a stopped experiment into review; an experiment that needs no approvals
    /// may be decided straight from stopped, and a draft abandoned.
    public func canMove(to next: ExperimentStatus) -> Bool {
        switch (self, next) {
        case (.draft, .running), (.running, .stopped), (.stopped, .inReview), (.stopped, .decided), (.inReview, .decided), (.draft, .decided): return true
        default: return false
        }
    }
}

/// An A/B test compares arms; a holdout keeps a slice of users on a pinned bundle (its first arm)
/// while everyone else (its second arm, "launches") gets production and every launch, so its
/// analysis measures what all launches since its start did together.
public enum ExperimentKind: String, Hashable, Sendable, Codable, CaseIterable {
    case abTest = "ab-test"
    case holdout
    /// A staged rollout's traffic split (arms `production` and `candidate`), run by the Lab's rollout.
    case rollout
    /// A candidate scored beside production on a sampled share of requests and never shown
    /// (arms `production` and `shadow`; the shadow arm's weight is the share).
    case shadow
}

public struct ExperimentSpec: Hashable, Sendable, Codable {
    public var id: String
    public var hypothesis: String
    /// The first arm is control.
    public var arms: [ExperimentArm]
    public var coverage: Double
    /// The assignment hash's seed. By default a random secret kept in the registry: with a seed
    /// anyone could guess (such as the id), a client could pick user ids that land in a chosen arm.
    public var seed: String
    public var namespace: NamespaceRange?
    public var successMetrics: [String]
    public var guardrails: [GuardrailMetric]
    /// Users per arm the test was planned for; nil with sequential testing.
    public var plannedSampleSize: Int?
    /// Tuning N* of the always-valid confidence sequence, when testing sequentially.
    public var sequentialTuning: Int?
    /// The relative lift the test should be able to detect (0.02 = 2%); the analysis reports the
    /// power reached for it and the days remaining. Nil means 2%.
    public var minimumDetectableEffect: Double?
    /// The team that owns the experiment and whom to ask.
    public var owner: Owner?
    /// Who created it; their own approval does not count toward the decision.
    public var author: String?
    /// Distinct approvals of the decided analysis a decision needs, the author's excluded. Nil means 2.
    public var approvalsRequired: Int?
    /// People asked to review; a refused decision names those who have not approved.
    public var reviewers: [String]?
    /// Nil means an A/B test.
    public var kind: ExperimentKind?
    /// When a holdout's stated period ends (it keeps running until someone stops it).
    public var plannedEnd: EpochMillis?
    public var status: ExperimentStatus

    public init(id: String, hypothesis: String, arms: [ExperimentArm], coverage: Double = 1, seed: String? = nil,
                namespace: NamespaceRange? = nil, successMetrics: [String], guardrails: [GuardrailMetric] = [],
                plannedSampleSize: Int? = nil, sequentialTuning: Int? = nil, minimumDetectableEffect: Double? = nil,
                owner: Owner? = nil, author: String? = nil, approvalsRequired: Int? = nil, reviewers: [String]? = nil,
                kind: ExperimentKind? = nil, plannedEnd: EpochMillis? = nil, status: ExperimentStatus = .draft) {
        self.id = id
        self.hypothesis = hypothesis
        self.arms = arms
        self.coverage = coverage
        self.seed = seed ?? Self.newSecretSeed()
        self.namespace = namespace
        self.successMetrics = successMetrics
        self.guardrails = guardrails
        self.plannedSampleSize = plannedSampleSize
        self.sequentialTuning = sequentialTuning
        self.minimumDetectableEffect = minimumDetectableEffect
        self.owner = owner
        self.author = author
        self.approvalsRequired = approvalsRequired
        self.reviewers = reviewers
        self.kind = kind
        self.plannedEnd = plannedEnd
        self.status = status
    }

    public var isHoldout: Bool { kind == .holdout }
    public var isRollout: Bool { kind == .rollout }
    public var isShadow: Bool { kind == .shadow }
    /// Holdouts, rollouts and shadows run as experiments but are not reviewed or decided like A/B tests.
    public var isReviewed: Bool { kind == nil || kind == .abTest }

    public var control: ExperimentArm { arms[0] }

    public static let defaultApprovals = 2
    public var requiredApprovals: Int { approvalsRequired ?? Self.defaultApprovals }

    /// 128 random bits as hex, from the system's cryptographic generator.
    public static func newSecretSeed() -> String { Secrets.randomHex(bytes: 16) }

    public func validate() throws(DuetError) {
        // Experiment ids name analysis files, so they come from the file-safe alphabet.
        try Identifier.validateFileSafe(id, field: "experiment id")
        try Identifier.validate(seed, field: "seed")
        if hypothesis.trimmingCharacters(in: .whitespaces).isEmpty {
            throw .invalidValue(field: "hypothesis", reason: "an experiment needs a hypothesis")
        }
        guard arms.count >= 2 else {
            throw .invalidValue(field: "arms", reason: "needs a control and at least one treatment, got \(arms.count) arm(s)")
        }
        var names = Set<String>()
        for arm in arms {
            try Identifier.validate(arm.name, field: "arm name")
            try Identifier.validateFileSafe(arm.bundleID, field: "arm bundle")
            guard names.insert(arm.name).inserted else {
                throw .invalidValue(field: "arms", reason: "arm name '\(arm.name)' appears twice")
            }
            guard arm.weight.isFinite, arm.weight > 0 else {
                throw .invalidValue(field: "weight", reason: "arm '\(arm.name)' has weight \(arm.weight); weights must be > 0")
            }
        }
        let total = arms.reduce(0) { $0 + $1.weight }
        guard abs(total - 1) <= 0.01 else {
            throw .invalidValue(field: "weights", reason: "arm weights sum to \(total); they must sum to 1")
        }
        guard coverage > 0, coverage <= 1 else {
            throw .invalidValue(field: "coverage", reason: "\(coverage) must be in (0, 1]")
        }
        if let namespace {
            try Identifier.validate(namespace.id, field: "namespace id")
            guard namespace.start >= 0, namespace.end <= 1, namespace.start < namespace.end else {
                throw .invalidValue(field: "namespace", reason: "range [\(namespace.start), \(namespace.end)) must lie in [0, 1] and be non-empty")
            }
        }
        if successMetrics.isEmpty {
            throw .invalidValue(field: "success metrics", reason: "name at least one success metric")
        }
        for guardrail in guardrails where !(guardrail.margin > 0 && guardrail.margin < 1) {
            throw .invalidValue(field: "guardrail margin", reason: "'\(guardrail.metric)' margin \(guardrail.margin) must be in (0, 1)")
        }
        if let minimumDetectableEffect, !(minimumDetectableEffect > 0 && minimumDetectableEffect < 10) {
            throw .invalidValue(field: "minimum detectable effect", reason: "\(minimumDetectableEffect) must be a relative lift in (0, 10), e.g. 0.02")
        }
        if isHoldout {
            guard arms.count == 2 else {
                throw .invalidValue(field: "arms", reason: "a holdout has two arms: the pinned slice first, then everyone else")
            }
            guard plannedEnd != nil else { throw .invalidValue(field: "period", reason: "a holdout states how long it runs") }
        }
        try owner?.validate()
        if let author { try Identifier.validateFileSafe(author, field: "author") }
        if let approvalsRequired, !(0...10).contains(approvalsRequired) {
            throw .invalidValue(field: "approvals", reason: "\(approvalsRequired) must be 0–10")
        }
        for reviewer in reviewers ?? [] {
            try Identifier.validateFileSafe(reviewer, field: "reviewer")
            if reviewer == author { throw .invalidValue(field: "reviewers", reason: "the author \(reviewer) cannot review their own experiment") }
        }
        if let plannedSampleSize, plannedSampleSize <= 0 {
            throw .invalidValue(field: "planned sample size", reason: "must be positive")
        }
    }

    /// The arm `user` falls in, or nil when the user is outside coverage or the namespace.
    public func assignedArm(for user: String) -> ExperimentArm? {
        let weights = arms.map(\.weight)
        guard let index = Assignment.arm(seed: seed, user: user, weights: weights, coverage: coverage, namespace: namespace) else {
            return nil
        }
        return arms[index]
    }
}

import Foundation
