public import DuetCore
public import Logging
public import ServiceLifecycle
import Foundation
import Synchronization

/// Keeps `RecentHistory` in step with the event log, not only with this replica's own ingest: at
/// start it reads the events of the last `window` (so a restart forgets nothing a user just
/// played), then it reads the log's tail every `interval`, so an event ingested by any replica
/// filters every replica's lists within about one interval.
public final class ConsumptionTail: Service, Sendable {
    let tail: any EventTail
    let recent: RecentHistory
    let window: Duration
    let interval: Duration
    let storeTimeout: Duration
    let logger: Logger
    private let cursor = Mutex<(sequence: Int64, since: EpochMillis)?>(nil)
    static let pageSize = 10_000

    init(tail: any EventTail, recent: RecentHistory, window: Duration, interval: Duration, storeTimeout: Duration = .seconds(10), logger: Logger) {
        self.tail = tail
        self.recent = recent
        self.window = window
        self.interval = interval
        self.storeTimeout = storeTimeout
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await Task.sleep(for: interval)
            do { try await catchUp() } catch {
                logger.error("event log tail unreadable; recent consumption is behind until it answers: \(error)")
            }
        }
    }

    /// Reads everything new in the log. Returns the number of events read.
    @discardableResult
    public func catchUp() async throws -> Int {
        var (sequence, since) = cursor.withLock { $0 } ?? (0, Date().epochMillis - EpochMillis(window.components.seconds) * 1_000)
        var read = 0
        while true {
            let (after, from) = (sequence, since)
            let page = try await FirstAnswer.within(storeTimeout, what: "the event log's tail") { [tail] in
                try await tail.tail(after: after, since: from, limit: Self.pageSize)
            }
            for stored in page { recent.record(user: stored.event.user, item: stored.event.item) }
            read += page.count
            if let last = page.last { sequence = last.sequence }
            cursor.withLock { $0 = (sequence, since) }
            if page.count < Self.pageSize { return read }
        }
    }
}
