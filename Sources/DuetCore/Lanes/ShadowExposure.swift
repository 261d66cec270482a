/// A list a shadowed candidate would have shown, computed beside the list that was shown and never
/// served. Stored apart from exposures, so no metric can count it as shown; feedback attaches to the
/// shown list's `requestID`, never to this.
public struct ShadowExposure: Hashable, Sendable, Codable {
    /// The request whose shown list this shadows.
    public var requestID: String
    public var shadowID: String
    public var user: String
    public var timestamp: EpochMillis
    public var shownBundle: String
    public var shown: [String]
    /// The candidate's bundle and its list, in rank order.
    public var bundleID: String
    public var items: [String]

    public init(requestID: String, shadowID: String, user: String, timestamp: EpochMillis, shownBundle: String, shown: [String],
                bundleID: String, items: [String]) {
        self.requestID = requestID
        self.shadowID = shadowID
        self.user = user
        self.timestamp = timestamp
        self.shownBundle = shownBundle
        self.shown = shown
        self.bundleID = bundleID
        self.items = items
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "requestId", shadowID = "shadowId", user, timestamp, shownBundle, shown, bundleID = "bundleId", items
    }

    public func validate() throws(DuetError) {
        try Identifier.validate(requestID, field: "requestId")
        try Identifier.validate(shadowID, field: "shadowId")
        try Identifier.validate(user, field: "user")
        try Identifier.validate(bundleID, field: "bundleId")
        try Identifier.validate(shownBundle, field: "shownBundle")
    }

    /// Whether a request is in the shadow's sample: a pure function of the request id, so a replay decides the same.
    public static func sampled(requestID: String, share: Double) -> Bool {
        guard share < 0.9999 else { return true }
        return Double(Assignment.fnv1a32(requestID) % 10_000) < share * 10_000
    }
}
