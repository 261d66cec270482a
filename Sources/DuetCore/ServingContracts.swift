/// The two places where Serve meets the Lab, as the narrowest protocols Serve can be handed.
/// Serve's module depends on these and nothing else of the store: it cannot name a registry
/// write, so it cannot make one. The Lab's writing registry refines `ServingSource`.

/// What Serve reads from the registry: one cheap version poll, and on change the production
/// model and the running experiments.
public protocol ServingSource: Sendable {
    /// Increases on every change Serve must act on.
    func servingVersion() async throws -> Int
    func servingConfiguration() async throws -> ServingConfiguration
}

/// What Serve writes to the event log: appends only. An append returns once the batch is durable;
/// that return is the acknowledgement.
public protocol EventSink: Sendable {
    /// Appends in one transaction; all of the batch is stored or none. Returns the last sequence number.
    @discardableResult
    func append(events: [FeedbackEvent]) async throws -> Int64?
    @discardableResult
    func append(exposures: [Exposure]) async throws -> Int64?
    /// Appends the exposures whose request id is not stored yet, in one transaction, and returns how
    /// many were new: replaying a spill file again, or after a crash half-way, stores each once.
    func replay(exposures: [Exposure]) async throws -> Int
    /// Appends the batch once per key, in one transaction with the key: a client retrying a batch
    /// whose first attempt timed out but committed stores nothing again, and gets the first receipt.
    func append(events: [FeedbackEvent], batchKey: String) async throws -> BatchReceipt
    /// Appends lists a shadowed candidate would have shown; they live apart from exposures.
    func append(shadows: [ShadowExposure]) async throws
}

/// What an append under a batch key stored.
public struct BatchReceipt: Sendable, Equatable {
    public var lastSequence: Int64?
    public var accepted: Int
    /// True when the key was seen before and nothing was stored this time.
    public var repeated: Bool

    public init(lastSequence: Int64?, accepted: Int, repeated: Bool) {
        self.lastSequence = lastSequence
        self.accepted = accepted
        self.repeated = repeated
    }
}

/// An event as stored, with the log's sequence number: strictly increasing in append order,
/// so a reader can freeze the log at a high-water mark and page through it.
public struct StoredEvent: Hashable, Sendable {
    public var sequence: Int64
    public var event: FeedbackEvent

    public init(sequence: Int64, event: FeedbackEvent) {
        self.sequence = sequence
        self.event = event
    }
}

/// What Serve reads back from the event log: its tail of feedback events, so every replica, and a
/// restarted one, knows what each user just consumed, whichever replica ingested it.
public protocol EventTail: Sendable {
    /// Events with a sequence number above `sequence` and a timestamp at or after `since`, oldest first.
    func tail(after sequence: Int64, since: EpochMillis, limit: Int) async throws -> [StoredEvent]
}

/// What Serve needs to know, read in one cheap query: the production model, the running experiments and the published indexes.
public struct ServingConfiguration: Sendable, Hashable {
    /// Increases on every change Serve must act on: promotion, rollback, experiment start, stop or phase.
    public var version: Int
    public var productionGeneration: Int
    public var production: String?
    public var experiments: [ExperimentRecord]
    /// When every replica switches to this version (epoch ms): a little after it was written, so each
    /// can load and verify ahead and all switch together. Nil: switch on sight.
    public var activateAt: EpochMillis?
    /// The similarity indexes published under their own names, each with its own generation.
    public var indexes: [PublishedIndex]

    public init(version: Int, productionGeneration: Int, production: String?, experiments: [ExperimentRecord], activateAt: EpochMillis? = nil,
                indexes: [PublishedIndex] = []) {
        self.version = version
        self.productionGeneration = productionGeneration
        self.production = production
        self.experiments = experiments
        self.activateAt = activateAt
        self.indexes = indexes
    }
}

/// An experiment as the registry holds it: its current spec (status included) and phase.
public struct ExperimentRecord: Codable, Sendable, Hashable {
    public var spec: ExperimentSpec
    public var phase: Int
    public var createdAt: EpochMillis
    public var startedAt: EpochMillis?
    public var stoppedAt: EpochMillis?

    public init(spec: ExperimentSpec, phase: Int, createdAt: EpochMillis, startedAt: EpochMillis?, stoppedAt: EpochMillis?) {
        self.spec = spec
        self.phase = phase
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.stoppedAt = stoppedAt
    }
}
