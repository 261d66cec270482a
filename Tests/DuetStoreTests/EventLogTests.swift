import DuetCore
import DuetStore
import DuetTestSupport
import Foundation
import Testing

@Suite struct EventLogTests {
    static func event(_ n: Int, kind: EventKind = .play, at time: EpochMillis? = nil) -> FeedbackEvent {
        FeedbackEvent(user: "u\(n % 7)", item: "t\(n)", kind: kind, weight: Float(n % 5 + 1), timestamp: time ?? EpochMillis(1_000 * n),
                      requestID: n % 3 == 0 ? "r\(n)" : nil)
    }

    // Appends, reads, freezing, exposures and all-or-nothing batches are in BackendConformanceTests,
    // which runs them on SQLite and on PostgreSQL alike; this file keeps what only a file can show.

    @Test func logSurvivesReopenAndIsAppendOnly() async throws {
        try await withScratchFolder { folder in
            let path = folder.appendingPathComponent("events.sqlite").path
            do {
                let log = try SQLiteEventLog(path: path)
                try await log.append(events: (0..<50).map { Self.event($0) })
            }
            let reopened = try SQLiteEventLog(path: path)
            #expect(try await reopened.count(matching: EventFilter()) == 50)
            #expect(try await reopened.append(events: [Self.event(99)]) == 51)
        }
    }
}
