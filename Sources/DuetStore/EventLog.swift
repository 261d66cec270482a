public import DuetCore

public struct StoredExposure: Hashable, Sendable {
    public var sequence: Int64
    public var exposure: Exposure
}

/// Which events a read returns. Times are inclusive-exclusive: [from, until).
public struct EventFilter: Hashable, Sendable {
    public var from: EpochMillis?
    public var until: EpochMillis?
    public var kinds: Set<EventKind>?
    /// Read no further than this sequence number: the freeze point of a snapshot.
    public var maxSequence: Int64?

    public init(from: EpochMillis? = nil, until: EpochMillis? = nil, kinds: Set<EventKind>? = nil, maxSequence: Int64? = nil) {
        self.from = from
        self.until = until
        self.kinds = kinds
        self.maxSequence = maxSequence
    }
}

/// The append-only store of feedback events and exposures that Serve writes (through the
/// `EventSink` this refines) and the Lab reads.
public protocol EventLog: EventSink, EventTail {
    /// Appends everything `produce` hands over in one transaction: a bulk import either lands whole
    /// or not at all. Returns the number of events appended.
    func appendAtomically(_ produce: (_ append: (FeedbackEvent) throws -> Void) throws -> Void) async throws -> Int

    /// Events after `sequence` matching `filter`, oldest first, at most `limit`.
    func events(after sequence: Int64, matching filter: EventFilter, limit: Int) async throws -> [StoredEvent]
    func exposures(after sequence: Int64, matching filter: EventFilter, limit: Int) async throws -> [StoredExposure]

    /// The newest sequence numbers: freeze points for snapshots and analyses.
    func highWaterMark() async throws -> (events: Int64, exposures: Int64)
    func count(matching filter: EventFilter) async throws -> Int
    /// One shadow's lists, after `sequence`, oldest first, with their sequence numbers.
    func shadows(of shadowID: String, after sequence: Int64, limit: Int) async throws -> [(sequence: Int64, shadow: ShadowExposure)]
    /// Exposures with a timestamp in [from, until), counted in the database.
    func exposureSummary(from: EpochMillis, until: EpochMillis) async throws -> ExposureSummary
}

/// How many lists Serve showed in a window, and how many of them fell back.
public struct ExposureSummary: Hashable, Sendable, Codable {
    public var exposures: Int
    /// Lists that fell back to popularity (an unknown user, or too little history).
    public var popularityFallbacks: Int
    /// Lists where an experiment's or holdout's arm was served by fallback (its bundle unavailable).
    public var armFallbacks: Int

    public init(exposures: Int, popularityFallbacks: Int, armFallbacks: Int) {
        self.exposures = exposures
        self.popularityFallbacks = popularityFallbacks
        self.armFallbacks = armFallbacks
    }
}

extension EventLog {
    public func tail(after sequence: Int64, since: EpochMillis, limit: Int) async throws -> [StoredEvent] {
        try await events(after: sequence, matching: EventFilter(from: since), limit: limit)
    }

    /// Visits every matching event in pages, so memory does not grow with the log.
    public func forEachEvent(matching filter: EventFilter, pageSize: Int = 50_000,
                             _ body: ([StoredEvent]) throws -> Void) async throws {
        var cursor: Int64 = 0
        while true {
            let page = try await events(after: cursor, matching: filter, limit: pageSize)
            guard let last = page.last else { return }
            try body(page)
            cursor = last.sequence
        }
    }
}
