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

    /// GRDB's WAL setup lowers a pool's writer to `synchronous = NORMAL`, under which a commit is
    /// synced only at checkpoints; the strace check in CI (scripts/fsync-trace.sh) shows the syscalls.
    @Test func commitsAreSyncedOnBothFilesEvenAfterReopening() async throws {
        try await withScratchFolder { folder in
            let eventsPath = folder.appendingPathComponent("events.sqlite").path
            let registryPath = folder.appendingPathComponent("registry.sqlite").path
            for _ in 0..<2 {
                let log = try SQLiteEventLog(path: eventsPath)
                try await log.append(events: [Self.event(1)])
                #expect(try await log.writerSynchronousLevel() == 2, "the event log's writer is synchronous = FULL")
                #expect(try await SQLiteRegistry(path: registryPath).writerSynchronousLevel() == 2, "the registry's writer is synchronous = FULL")
            }
        }
    }
}
