public import DuetCore

/// Similarity indexes in the registry: artefacts are registered once (immutable, by id), and each
/// name has its own alias, moved by publish and rollback, with an append-only history and its own
/// generation. A new recommender never moves an index, and a new index never moves production.
extension RegistryRules {
    public struct IndexPublication: Sendable, Hashable {
        public var name: String
        /// The artefact to publish; for a rollback, nil means the one before the current.
        public var artefact: String?
        public var actor: String
        public var reason: String
        /// Refuse when the name's generation has moved since the caller looked.
        public var expectedGeneration: Int?

        public init(name: String, artefact: String?, actor: String, reason: String, expectedGeneration: Int? = nil) {
            self.name = name
            self.artefact = artefact
            self.actor = actor
            self.reason = reason
            self.expectedGeneration = expectedGeneration
        }
    }

    /// What a publish or rollback reads first, in the transaction that writes its result.
    public struct IndexFacts: Sendable, Hashable {
        /// The artefact named by the request, if registered.
        public var artefact: IndexArtefactRecord?
        /// The name's history, oldest first.
        public var history: [IndexChange]
        public var actorRegistered: Bool

        public init(artefact: IndexArtefactRecord?, history: [IndexChange], actorRegistered: Bool) {
            self.artefact = artefact
            self.history = history
            self.actorRegistered = actorRegistered
        }
    }

    /// An artefact may be registered once, under the name its manifest carries, by a registered person.
    public static func registerIndex(_ record: IndexArtefactRecord, exists: Bool, actorRegistered: Bool) throws -> IndexArtefactRecord {
        try record.manifest.validate()
        guard record.id.count == 64, record.id.allSatisfy(\.isHexDigit) else {
            throw DuetError.invalidValue(field: "index id", reason: "'\(record.id)' is not the SHA-256 of a manifest")
        }
        guard actorRegistered else { throw unregistered(record.registeredBy) }
        guard !exists else { throw DuetError.conflict("index artefact \(record.id.prefix(12)) is already registered") }
        return record
    }

    public static func publishIndex(_ request: IndexPublication, facts: IndexFacts, at now: EpochMillis) throws -> IndexChange {
        try IndexName.validate(request.name)
        try requireText(request.actor, "actor")
        try requireText(request.reason, "reason")
        guard facts.actorRegistered else { throw unregistered(request.actor) }
        guard let id = request.artefact else { throw DuetError.invalidValue(field: "artefact", reason: "name the index artefact to publish") }
        guard let artefact = facts.artefact, artefact.id == id else {
            throw DuetError.notFound(kind: "index artefact", id: "\(id) (build it with `duet lab index build \(request.name)`)")
        }
        guard artefact.name == request.name else {
            throw DuetError.refused("artefact \(id.prefix(12)) was built as '\(artefact.name)'; it can be published only under that name")
        }
        let current = facts.history.last
        try requireIndexGeneration(request, current)
        guard current?.to != id else { throw DuetError.refused("'\(request.name)' already serves \(id.prefix(12))") }
        return IndexChange(name: request.name, generation: (current?.generation ?? 0) + 1, action: .publish, from: current?.to, to: id,
                           actor: request.actor, reason: request.reason, changedAt: now)
    }

    /// Back one step (to what served before the current), or to an artefact that served under this name before.
    public static func rollbackIndex(_ request: IndexPublication, facts: IndexFacts, at now: EpochMillis) throws -> IndexChange {
        try requireText(request.actor, "actor")
        try requireText(request.reason, "reason")
        guard facts.actorRegistered else { throw unregistered(request.actor) }
        guard let current = facts.history.last else { throw DuetError.refused("'\(request.name)' was never published; there is nothing to roll back") }
        try requireIndexGeneration(request, current)
        let destination: String
        if let target = request.artefact {
            guard facts.history.contains(where: { $0.to == target }) else {
                throw DuetError.refused("artefact \(target.prefix(12)) never served as '\(request.name)'; roll back only to one that did")
            }
            guard target != current.to else { throw DuetError.refused("'\(request.name)' already serves \(target.prefix(12))") }
            destination = target
        } else {
            guard let previous = current.from else {
                throw DuetError.refused("generation \(current.generation) of '\(request.name)' was its first publication; there is nothing earlier to roll back to")
            }
            destination = previous
        }
        return IndexChange(name: request.name, generation: current.generation + 1, action: .rollback, from: current.to, to: destination,
                           actor: request.actor, reason: request.reason, changedAt: now)
    }

    static func requireIndexGeneration(_ request: IndexPublication, _ current: IndexChange?) throws {
        if let expected = request.expectedGeneration, expected != (current?.generation ?? 0) {
            throw DuetError.conflict("'\(request.name)' moved to generation \(current?.generation ?? 0) (expected \(expected)); check `duet lab index history \(request.name)` and try again")
        }
    }
}
