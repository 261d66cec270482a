public import DuetCore
public import DuetStore
public import Foundation

/// People, and the review that stands between a stopped experiment and its decision. The rules
/// live in the registry (`RegistryRules.review`, `RegistryRules.record`); the Lab adds what only
/// it can check: that an approval names an analysis it wrote, and the newest one.
extension Lab {
    /// Registers a person with their team; every review entry and decision names one.
    public func addPerson(_ name: String, team: String, contact: String) async throws -> Person {
        let person = Person(name: name, team: team, contact: contact, createdAt: Date().epochMillis)
        try await registry.add(person)
        return person
    }

    /// A new dashboard sign-in token for the person. Only its SHA-256 is stored, so it is shown once.
    public func issueSignInToken(for name: String) async throws -> String {
        let token = Secrets.randomHex(bytes: 24)
        try await registry.setSignInTokenHash(Secrets.sha256Hex(token), for: name)
        return token
    }

    /// The registered person whose sign-in token this is, checked in constant time.
    public func person(signingInAs name: String, token: String) async throws -> Person? {
        guard let person = try await registry.people().first(where: { $0.name == name }),
              let stored = try await registry.signInTokenHash(for: name),
              Secrets.matches(Secrets.sha256Hex(token), stored) else { return nil }
        return person
    }

    /// Sets the team owning a model (an id or prefix) or, with `metric`, a metric.
    public func setOwner(_ owner: Owner, model reference: String) async throws {
        try await registry.setOwner(owner, ofModel: try await resolveBundle(reference))
    }

    public func setOwner(_ owner: Owner, metric: String) async throws {
        guard ExperimentMetric(rawValue: metric) != nil else {
            throw DuetError.invalidValue(field: "metric", reason: "'\(metric)' is not one of \(ExperimentMetric.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try await registry.setOwner(owner, ofMetric: metric)
    }

    public func reviewState(of experiment: String) async throws -> ReviewState {
        try Identifier.validateFileSafe(experiment, field: "experiment id")
        return ReviewState(entries: try await registry.review(of: experiment))
    }

    @discardableResult
    public func comment(on experiment: String, as author: String, text: String, replyingTo parent: Int64? = nil) async throws -> ReviewEntry {
        try await addReview(ReviewEntry(experimentID: experiment, kind: .comment, author: author, text: text, parent: parent, createdAt: Date().epochMillis))
    }

    /// An objection blocks the decision until its author resolves it or someone else overrules it.
    @discardableResult
    public func object(to experiment: String, as author: String, text: String) async throws -> ReviewEntry {
        try await addReview(ReviewEntry(experimentID: experiment, kind: .objection, author: author, text: text, createdAt: Date().epochMillis))
    }

    @discardableResult
    public func resolve(objection: Int64, of experiment: String, as author: String, text: String = "resolved") async throws -> ReviewEntry {
        try await addReview(ReviewEntry(experimentID: experiment, kind: .resolution, author: author, text: text, parent: objection,
                                        createdAt: Date().epochMillis))
    }

    @discardableResult
    public func overrule(objection: Int64, of experiment: String, as author: String, reason: String) async throws -> ReviewEntry {
        try await addReview(ReviewEntry(experimentID: experiment, kind: .overrule, author: author, text: reason, parent: objection,
                                        createdAt: Date().epochMillis))
    }

    /// Approves the analysis the approver read (`analysis`: its id or at least 12 hex digits of it),
    /// which must be the experiment's newest: approving stale evidence would let a decision rest on
    /// an analysis nobody approved.
    @discardableResult
    public func approve(_ experiment: String, as author: String, analysis: String, text: String = "") async throws -> ReviewEntry {
        try Identifier.validateFileSafe(experiment, field: "experiment id")
        guard let (_, newest) = try latestAnalysis(of: experiment) else {
            throw DuetError.refused("refused: experiment '\(experiment)' has no analysis to approve; run `duet lab analyze \(experiment)` first")
        }
        guard analysis.count >= 12, newest.hasPrefix(analysis.lowercased()) else {
            throw DuetError.refused("refused: the approval names analysis \(analysis.prefix(16)), but the newest is \(newest.prefix(16)); read it, then approve it")
        }
        return try await addReview(ReviewEntry(experimentID: experiment, kind: .approval, author: author, text: text, analysisHash: newest,
                                               createdAt: Date().epochMillis))
    }

    private func addReview(_ entry: ReviewEntry) async throws -> ReviewEntry {
        try Identifier.validateFileSafe(entry.experimentID, field: "experiment id")
        let stored = try await registry.add(entry)
        await notify(.review(stored))
        return stored
    }
}
