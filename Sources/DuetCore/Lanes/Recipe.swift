import Foundation

/// Which feedback a recipe learns from. Production's training data is kept apart from the
/// experiments' by default: feedback on a list that production did not serve (an experiment's
/// treatment, a rollout's candidate, a holdout's pinned bundle) would teach the next production
/// model what a candidate showed.
public enum FeedbackSource: String, Hashable, Sendable, Codable, CaseIterable {
    /// Feedback without a served list, and feedback on lists served by the production bundle of the moment.
    case production
    /// Every feedback event, whichever bundle served the list it follows.
    case all
}

/// One step of a staged rollout: the candidate's share of traffic, held at least `minimumDwellSeconds`
/// and until at least `minimumUsers` users have seen the candidate. A share of 1 is the promotion.
public struct RolloutStage: Hashable, Sendable, Codable {
    public var share: Double
    public var minimumDwellSeconds: Int
    public var minimumUsers: Int

    public init(share: Double, minimumDwellSeconds: Int, minimumUsers: Int) {
        self.share = share
        self.minimumDwellSeconds = minimumDwellSeconds
        self.minimumUsers = minimumUsers
    }

    /// 5% → 25% → 100%, an hour and 200 candidate users at each step before the next.
    public static let defaults = [RolloutStage(share: 0.05, minimumDwellSeconds: 3_600, minimumUsers: 200),
                                  RolloutStage(share: 0.25, minimumDwellSeconds: 3_600, minimumUsers: 200),
                                  RolloutStage(share: 1, minimumDwellSeconds: 0, minimumUsers: 0)]

    /// Parses "5%,25%,100%" (or "0.05,0.25,1") with one dwell and user minimum for every stage.
    public static func parse(_ text: String, dwellSeconds: Int, users: Int) throws(DuetError) -> [RolloutStage] {
        var stages: [RolloutStage] = []
        for part in text.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            let percent = trimmed.hasSuffix("%")
            guard let number = Double(percent ? String(trimmed.dropLast()) : trimmed) else {
                throw .invalidValue(field: "stages", reason: "'\(trimmed)' is not a share (write 5% or 0.05)")
            }
            stages.append(RolloutStage(share: percent ? number / 100 : number, minimumDwellSeconds: dwellSeconds, minimumUsers: users))
        }
        if let last = stages.indices.last { stages[last].minimumDwellSeconds = 0; stages[last].minimumUsers = 0 }
        try validate(stages)
        return stages
    }

    public static func validate(_ stages: [RolloutStage]) throws(DuetError) {
        guard stages.count >= 2 else { throw .invalidValue(field: "stages", reason: "a rollout needs at least one partial stage before 100%") }
        var previous = 0.0
        for stage in stages.dropLast() {
            guard stage.share > previous, stage.share < 1 else {
                throw .invalidValue(field: "stages", reason: "shares must rise strictly and stay below 100% before the last stage; got \(stage.share)")
            }
            guard stage.minimumDwellSeconds >= 0, stage.minimumUsers >= 0 else {
                throw .invalidValue(field: "stages", reason: "dwell and user minimums must be ≥ 0")
            }
            previous = stage.share
        }
        guard stages.last!.share == 1 else { throw .invalidValue(field: "stages", reason: "the last stage must be 100% (the promotion)") }
    }
}

/// What a recipe's refresh lane may do without an experiment: retrain on newer data, pass an
/// offline non-regression gate against production, then roll out in stages.
public struct RefreshPolicy: Hashable, Sendable, Codable {
    /// The ranking metric the gate judges ("ndcg", "recall", …).
    public var metric: String
    /// Absolute tolerance: the gate passes when the lower end of the paired 95% interval of
    /// (refresh − production) is above −margin.
    public var margin: Double
    /// Hours at the end of the window held out to evaluate on: neither model trained on them.
    public var holdoutHours: Int
    public var stages: [RolloutStage]

    public init(metric: String = "ndcg", margin: Double = 0.01, holdoutHours: Int = 24, stages: [RolloutStage] = RolloutStage.defaults) {
        self.metric = metric
        self.margin = margin
        self.holdoutHours = holdoutHours
        self.stages = stages
    }
}

/// How a model is made: an algorithm with its settings, the data window and kinds it learns from,
/// and who owns it. Stored in the registry, versioned: changing a recipe adds a version, and every
/// bundle names the version that made it. A refresh is the same recipe on newer data.
public struct Recipe: Hashable, Sendable, Codable {
    public var name: String
    /// Set by the registry: 1 for the first, one more for each change.
    public var version: Int
    /// "als", "bpr", "item-knn" or "popularity".
    public var algorithm: String
    public var hyperparameters: [String: Double]
    /// Days of events before the freeze that the recipe trains on; nil for all of them.
    public var windowDays: Int?
    /// Event kinds folded into the weights; nil for every kind but the negative ones.
    public var kinds: [String]?
    public var learnsFrom: FeedbackSource
    /// The refresh lane's policy; nil means every new model of this recipe goes through an experiment.
    public var refresh: RefreshPolicy?
    public var owner: Owner?
    public var author: String
    public var createdAt: EpochMillis

    public init(name: String, version: Int = 0, algorithm: String, hyperparameters: [String: Double] = [:], windowDays: Int? = nil,
                kinds: [String]? = nil, learnsFrom: FeedbackSource = .production, refresh: RefreshPolicy? = nil, owner: Owner? = nil,
                author: String, createdAt: EpochMillis) {
        self.name = name
        self.version = version
        self.algorithm = algorithm
        self.hyperparameters = hyperparameters
        self.windowDays = windowDays
        self.kinds = kinds
        self.learnsFrom = learnsFrom
        self.refresh = refresh
        self.owner = owner
        self.author = author
        self.createdAt = createdAt
    }

    public static let algorithms = ["als", "bpr", "item-knn", "popularity"]

    /// "name@version": what a bundle and a model record name.
    public var reference: String { "\(name)@\(version)" }

    /// Splits "name@3" into its parts; a bare name has no version.
    public static func parseReference(_ text: String) -> (name: String, version: Int?) {
        guard let at = text.lastIndex(of: "@"), let version = Int(text[text.index(after: at)...]) else { return (text, nil) }
        return (String(text[..<at]), version)
    }

    /// Whether two recipes make the same kind of model, so one's output refreshes the other's.
    public func sameMethod(as other: Recipe) -> Bool {
        algorithm == other.algorithm && hyperparameters == other.hyperparameters && windowDays == other.windowDays
            && kinds == other.kinds && learnsFrom == other.learnsFrom
    }

    public func validate() throws(DuetError) {
        try Identifier.validateFileSafe(name, field: "recipe name")
        guard !name.contains("@") else { throw .invalidValue(field: "recipe name", reason: "'@' separates a recipe's name from its version") }
        guard Self.algorithms.contains(algorithm) else {
            throw .invalidValue(field: "algorithm", reason: "'\(algorithm)' is not one of \(Self.algorithms.joined(separator: ", "))")
        }
        for (key, value) in hyperparameters where !value.isFinite {
            throw .invalidValue(field: "hyperparameter", reason: "'\(key)' is \(value); give a finite number")
        }
        if let windowDays, !(1...3_650).contains(windowDays) {
            throw .invalidValue(field: "window", reason: "\(windowDays) days must be 1–3650")
        }
        if let kinds {
            guard !kinds.isEmpty else { throw .invalidValue(field: "kinds", reason: "name at least one event kind, or leave kinds out") }
            for kind in kinds { _ = try EventKind.validated(kind) }
        }
        try owner?.validate()
        if author.allSatisfy(\.isWhitespace) { throw .invalidValue(field: "author", reason: "name who wrote the recipe") }
        if let refresh {
            guard refresh.margin >= 0, refresh.margin < 1 else {
                throw .invalidValue(field: "refresh margin", reason: "\(refresh.margin) must be in [0, 1)")
            }
            guard (1...24 * 90).contains(refresh.holdoutHours) else {
                throw .invalidValue(field: "refresh holdout", reason: "\(refresh.holdoutHours) hours must be 1–2160")
            }
            if let windowDays, refresh.holdoutHours >= windowDays * 24 {
                throw .invalidValue(field: "refresh holdout", reason: "\(refresh.holdoutHours) h would leave nothing of the \(windowDays)-day window to train on")
            }
            try RolloutStage.validate(refresh.stages)
        }
    }
}
