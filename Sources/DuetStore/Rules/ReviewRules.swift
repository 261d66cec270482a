public import DuetCore

/// The review's rules, beside the registry's: who may add what to an experiment's review, and
/// what a decision needs. Both backends read the entries in the transaction and call these.
extension RegistryRules {
    public static let maximumReviewText = 10_000

    /// The entry to store, and whether it moves a stopped experiment into review.
    /// `author` is the registered person the entry names (nil when nobody of that name is registered).
    public static func review(_ entry: ReviewEntry, experiment: (status: ExperimentStatus, spec: ExperimentSpec)?,
                              entries: [ReviewEntry], author: Person?) throws -> (entry: ReviewEntry, opensReview: Bool) {
        let id = entry.experimentID
        guard let experiment else { throw DuetError.notFound(kind: "experiment", id: id) }
        try requireDecidable(experiment.spec)
        guard let author else { throw unregistered(entry.author) }
        switch experiment.status {
        case .stopped, .inReview: break
        case .draft, .running:
            throw DuetError.refused("experiment '\(id)' is \(experiment.status.rawValue); it is reviewed once it has stopped")
        case .decided:
            throw DuetError.refused("experiment '\(id)' is already decided; its review is closed")
        }
        if entry.text.count > maximumReviewText {
            throw DuetError.invalidValue(field: "text", reason: "\(entry.text.count) characters; at most \(maximumReviewText)")
        }
        let state = ReviewState(entries: entries)
        var stored = entry
        stored.author = author.name
        switch entry.kind {
        case .comment:
            try requireText(entry.text, "comment")
            if let parent = entry.parent, state.entry(parent) == nil {
                throw DuetError.notFound(kind: "review entry to answer", id: "#\(parent) of experiment '\(id)'")
            }
            stored.analysisHash = nil
        case .objection:
            try requireText(entry.text, "objection")
            stored.parent = nil
            stored.analysisHash = nil
        case .approval:
            guard let hash = entry.analysisHash, hash.count == 64, hash.allSatisfy(\.isHexDigit) else {
                throw DuetError.invalidValue(field: "analysis", reason: "an approval names the analysis it rests on (its full 64-hex-digit id)")
            }
            if author.name == experiment.spec.author {
                throw DuetError.refused("refused: \(author.name) is the author of experiment '\(id)'; an author's approval does not count, so it is not taken")
            }
            if state.approvals[hash]?.contains(author.name) == true {
                throw DuetError.conflict("\(author.name) already approved analysis \(hash.prefix(16)) of experiment '\(id)'")
            }
            stored.parent = nil
        case .resolution, .overrule:
            guard let parent = entry.parent, let objection = state.objections.first(where: { $0.entry.id == parent }) else {
                throw DuetError.notFound(kind: "objection", id: "#\(entry.parent.map(String.init) ?? "?") of experiment '\(id)'")
            }
            guard objection.isOpen else { throw DuetError.conflict("objection #\(parent) is no longer open") }
            if entry.kind == .resolution, objection.entry.author != author.name {
                throw DuetError.refused("refused: only \(objection.entry.author), who raised objection #\(parent), can resolve it; anyone else overrules it with a reason")
            }
            if entry.kind == .overrule {
                try requireText(entry.text, "overrule reason")
                if objection.entry.author == author.name {
                    throw DuetError.refused("refused: \(author.name) raised objection #\(parent); resolve it instead of overruling it")
                }
            }
            stored.analysisHash = nil
        }
        return (stored, experiment.status == .stopped)
    }

    /// The decision to write, with its approvers and dissent. It is refused on a running experiment, for an
    /// arm the experiment lacks, by someone not registered, while an objection is open, or without the
    /// approvals of the decided analysis the experiment requires (its author's excluded). The refusal names
    /// who is missing.
    public static func record(_ decision: Decision, experiment: (status: ExperimentStatus, spec: ExperimentSpec)?,
                              review: [ReviewEntry], reviewer: Person?) throws -> Decision {
        try decision.validate()
        let id = decision.experimentID
        guard let experiment else { throw DuetError.notFound(kind: "experiment", id: id) }
        try requireDecidable(experiment.spec)
        guard reviewer != nil else { throw unregistered(decision.reviewer) }
        switch experiment.status {
        case .running: throw DuetError.refused("stop experiment '\(id)' before deciding it")
        case .decided: throw DuetError.refused("experiment '\(id)' is already decided")
        case .draft, .stopped, .inReview: break
        }
        if let arm = decision.arm, !experiment.spec.arms.contains(where: { $0.name == arm }) {
            throw DuetError.invalidValue(field: "arm", reason: "experiment '\(id)' has no arm '\(arm)'")
        }
        let state = ReviewState(entries: review)
        let open = state.openObjections
        if !open.isEmpty {
            let listed = open.map { "#\($0.entry.id ?? 0) by \($0.entry.author) (\"\($0.entry.text.prefix(80))\")" }.joined(separator: "; ")
            throw DuetError.refused("refused: experiment '\(id)' has \(open.count) open objection\(open.count == 1 ? "" : "s"): \(listed). Its author resolves it, or someone else overrules it with a reason")
        }
        let spec = experiment.spec
        let approvers = state.countingApprovers(of: decision.analysisHash, author: spec.author)
        let needed = spec.requiredApprovals
        if approvers.count < needed, experiment.status != .draft {
            var message = "refused: experiment '\(id)' needs \(needed) approval\(needed == 1 ? "" : "s") of analysis \(decision.analysisHash.prefix(16))"
            if let author = spec.author { message += " from people other than its author \(author)" }
            message += "; it has \(approvers.count)\(approvers.isEmpty ? "" : " (\(approvers.joined(separator: ", ")))")"
            let waiting = (spec.reviewers ?? []).filter { !approvers.contains($0) }
            message += waiting.isEmpty ? ". Missing: \(needed - approvers.count) more approver\(needed - approvers.count == 1 ? "" : "s")"
                                       : ". Missing: \(needed - approvers.count) more, from the requested reviewers who have not approved: \(waiting.joined(separator: ", "))"
            let stale = state.approvals.filter { $0.key != decision.analysisHash }.flatMap { hash, names in names.map { "\($0) (\(hash.prefix(12)))" } }
            if !stale.isEmpty { message += ". Approvals of other analyses do not count: \(stale.sorted().joined(separator: ", "))" }
            throw DuetError.refused(message)
        }
        var recorded = decision
        recorded.approvers = approvers
        recorded.dissent = state.dissent
        return recorded
    }

    /// Promoting a model that another team owns needs that team: the actor is in it, or someone in it
    /// approved the ship decision the promotion rests on.
    static func requireOwnerConsent(model: String, owner: Owner?, actor: String, teams: [String: String], approvers: [String]) throws {
        guard let owner else { return }
        let actorTeam = teams[actor]
        if actorTeam == owner.team { return }
        if approvers.contains(where: { teams[$0] == owner.team }) { return }
        let who = actorTeam.map { "\(actor) (team \($0))" } ?? "\(actor) (no registered team)"
        let approved = approvers.isEmpty ? "no approver of its ship decision" : "none of its ship decision's approvers (\(approvers.joined(separator: ", ")))"
        throw DuetError.refused("refused: model \(model.prefix(12)) is owned by team \(owner.team) (contact \(owner.contact)); promoting it as \(who) needs an approval from team \(owner.team), and \(approved) is in it. Ask someone in \(owner.team) to approve the experiment, or to promote it")
    }

    /// A rollout's record is its guard's steps, and a shadow decides nothing: neither is reviewed or decided.
    static func requireDecidable(_ spec: ExperimentSpec) throws {
        if spec.isRollout {
            throw DuetError.refused("'\(spec.id)' is a staged rollout: it is not reviewed or decided; its steps are its record (`duet lab rollout status \(spec.id)`)")
        }
        if spec.isShadow {
            throw DuetError.refused("'\(spec.id)' is a shadow: it is not reviewed or decided; read it with `duet lab shadow report \(spec.id)`")
        }
    }

    public static func unregistered(_ name: String) -> DuetError {
        .refused("refused: nobody named '\(name)' is registered; add them with `duet lab people add \(name) --team TEAM --contact ADDRESS`, and act with --as NAME or DUET_USER")
    }

    public static func addPerson(_ person: Person, exists: Bool) throws {
        try person.validate()
        if exists { throw DuetError.conflict("\(person.name) is already registered") }
    }
}
