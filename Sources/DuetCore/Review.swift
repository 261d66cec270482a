/// A team that owns something (a model, an experiment, a metric) and whom to ask about it.
public struct Owner: Hashable, Sendable, Codable {
    public var team: String
    public var contact: String

    public init(team: String, contact: String) {
        self.team = team
        self.contact = contact
    }

    public func validate() throws(DuetError) {
        try Identifier.validate(team, field: "team")
        if contact.allSatisfy(\.isWhitespace) { throw .invalidValue(field: "contact", reason: "name whom to ask (an address or a handle)") }
        if contact.count > 200 { throw .invalidValue(field: "contact", reason: "at most 200 characters") }
    }
}

/// Someone who acts in the Lab: every review entry, decision and production change names one.
public struct Person: Hashable, Sendable, Codable {
    public var name: String
    public var team: String
    public var contact: String
    public var createdAt: EpochMillis

    public init(name: String, team: String, contact: String, createdAt: EpochMillis) {
        self.name = name
        self.team = team
        self.contact = contact
        self.createdAt = createdAt
    }

    public func validate() throws(DuetError) {
        try Identifier.validateFileSafe(name, field: "person name")
        try Owner(team: team, contact: contact).validate()
    }
}

public enum ReviewKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// Text in a thread; `parent` is the entry it answers.
    case comment
    /// Blocks the decision until its author resolves it or someone overrules it with a reason.
    case objection
    /// Names the analysis the approver read.
    case approval
    /// The objection's author withdraws it; `parent` is the objection.
    case resolution
    /// Someone else sets an objection aside; the text is the reason, and the decision records it as dissent.
    case overrule
}

/// One entry of an experiment's review. Entries are only ever added, never changed.
public struct ReviewEntry: Hashable, Sendable, Codable {
    public var id: Int64?
    public var experimentID: String
    public var kind: ReviewKind
    public var author: String
    public var text: String
    public var parent: Int64?
    /// The analysis an approval rests on (its SHA-256).
    public var analysisHash: String?
    public var createdAt: EpochMillis

    public init(id: Int64? = nil, experimentID: String, kind: ReviewKind, author: String, text: String, parent: Int64? = nil,
                analysisHash: String? = nil, createdAt: EpochMillis) {
        self.id = id
        self.experimentID = experimentID
        self.kind = kind
        self.author = author
        self.text = text
        self.parent = parent
        self.analysisHash = analysisHash
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey { case id, experimentID = "experimentId", kind, author, text, parent, analysisHash, createdAt }
}

/// An objection that was overruled rather than resolved: the decision carries it.
public struct Dissent: Hashable, Sendable, Codable {
    public var objection: Int64
    public var author: String
    public var text: String
    public var overruledBy: String
    public var reason: String

    public init(objection: Int64, author: String, text: String, overruledBy: String, reason: String) {
        self.objection = objection
        self.author = author
        self.text = text
        self.overruledBy = overruledBy
        self.reason = reason
    }
}

/// What an experiment's review entries add up to, read from the entries alone.
public struct ReviewState: Sendable, Hashable {
    public enum ObjectionState: Hashable, Sendable {
        case open
        case resolved(at: EpochMillis)
        case overruled(by: String, reason: String, at: EpochMillis)
    }

    public struct Objection: Hashable, Sendable {
        public var entry: ReviewEntry
        public var state: ObjectionState
        public var isOpen: Bool { state == .open }
    }

    public var entries: [ReviewEntry]
    public var objections: [Objection]
    /// Approvers by the analysis they approved, in the order they approved.
    public var approvals: [String: [String]]

    public init(entries: [ReviewEntry]) {
        self.entries = entries.sorted { ($0.id ?? 0) < ($1.id ?? 0) }
        var objections: [Int64: Objection] = [:]
        var order: [Int64] = []
        var approvals: [String: [String]] = [:]
        for entry in self.entries {
            switch entry.kind {
            case .objection:
                guard let id = entry.id else { continue }
                objections[id] = Objection(entry: entry, state: .open)
                order.append(id)
            case .resolution:
                if let parent = entry.parent, objections[parent]?.isOpen == true { objections[parent]?.state = .resolved(at: entry.createdAt) }
            case .overrule:
                if let parent = entry.parent, objections[parent]?.isOpen == true {
                    objections[parent]?.state = .overruled(by: entry.author, reason: entry.text, at: entry.createdAt)
                }
            case .approval:
                if let hash = entry.analysisHash, !(approvals[hash]?.contains(entry.author) ?? false) { approvals[hash, default: []].append(entry.author) }
            case .comment:
                break
            }
        }
        self.objections = order.compactMap { objections[$0] }
        self.approvals = approvals
    }

    public var openObjections: [Objection] { objections.filter(\.isOpen) }

    public var dissent: [Dissent] {
        objections.compactMap { objection in
            guard case let .overruled(by, reason, _) = objection.state, let id = objection.entry.id else { return nil }
            return Dissent(objection: id, author: objection.entry.author, text: objection.entry.text, overruledBy: by, reason: reason)
        }
    }

    /// Approvers of `analysis` who count toward a decision: everyone but the experiment's author.
    public func countingApprovers(of analysis: String, author: String?) -> [String] {
        (approvals[analysis] ?? []).filter { $0 != author }
    }

    public func entry(_ id: Int64) -> ReviewEntry? { entries.first { $0.id == id } }
}
