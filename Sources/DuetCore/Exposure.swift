/// Which arm of one running experiment a request was assigned to, and which it was served.
/// They differ only when serving fell back, and then `fallbackReason` says why.
public struct ExperimentArmExposure: Hashable, Sendable, Codable {
    public var experimentID: String
    public var phase: Int
    public var assigned: String
    public var served: String
    public var fallbackReason: String?

    public init(experimentID: String, phase: Int = 1, assigned: String, served: String, fallbackReason: String? = nil) {
        self.experimentID = experimentID
        self.phase = phase
        self.assigned = assigned
        self.served = served
        self.fallbackReason = fallbackReason
    }

    enum CodingKeys: String, CodingKey {
        case experimentID = "experimentId", phase, assigned, served, fallbackReason
    }
}

/// A list Serve showed to a user: the unit the Lab attributes feedback to.
public struct Exposure: Hashable, Sendable, Codable {
    public var requestID: String
    public var user: String
    public var timestamp: EpochMillis
    /// Item ids in the order shown.
    public var items: [String]
    public var bundleID: String
    public var experiments: [ExperimentArmExposure]
    /// Set when the list came from a fallback (e.g. "unknown-user" → popularity).
    public var fallback: String?
    /// Free-form label from the caller (e.g. "home", "radio").
    public var context: String?

    public init(requestID: String, user: String, timestamp: EpochMillis, items: [String], bundleID: String,
                experiments: [ExperimentArmExposure] = [], fallback: String? = nil, context: String? = nil) {
        self.requestID = requestID
        self.user = user
        self.timestamp = timestamp
        self.items = items
        self.bundleID = bundleID
        self.experiments = experiments
        self.fallback = fallback
        self.context = context
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "requestId", user, timestamp, items, bundleID = "bundleId", experiments, fallback, context
    }

    public func validate() throws(DuetError) {
        try Identifier.validate(requestID, field: "requestId")
        try Identifier.validate(user, field: "user")
        try Identifier.validate(bundleID, field: "bundleId")
        for item in items { try Identifier.validate(item, field: "items[]") }
        for arm in experiments where arm.assigned != arm.served && arm.fallbackReason == nil {
            throw .invalidValue(field: "experiments", reason: "arm of '\(arm.experimentID)' was assigned '\(arm.assigned)' but served '\(arm.served)' without a fallbackReason")
        }
    }
}
