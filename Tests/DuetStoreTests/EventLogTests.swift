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

    @Test func appendsAndReadsBackByTimeAndKind() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let events = (0..<100).map { Self.event($0, kind: $0 % 4 == 0 ? .skip : .play) }
            let last = try await log.append(events: events)
            #expect(last == 100)
            #expect(try await log.count(matching: EventFilter()) == 100)
            #expect(try await log.count(matching: EventFilter(kinds: [.skip])) == 25)
            #expect(try await log.count(matching: EventFilter(from: 10_000, until: 20_000)) == 10)

            var seen: [FeedbackEvent] = []
            try await log.forEachEvent(matching: EventFilter(), pageSize: 7) { page in seen += page.map(\.event) }
            #expect(seen == events)

            let frozen = EventFilter(maxSequence: 40)
            try await log.append(events: [Self.event(500)])
            #expect(try await log.count(matching: frozen) == 40)
        }
    }

    @Test func exposuresRoundTrip() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let exposure = Exposure(requestID: "req-1", user: "u1", timestamp: 5, items: ["a", "b", "c"], bundleID: "bundle",
                                    experiments: [ExperimentArmExposure(experimentID: "e1", assigned: "treatment", served: "control",
                                                                        fallbackReason: "treatment-unavailable")],
                                    fallback: nil, context: "home")
            try await log.append(exposures: [exposure])
            let page = try await log.exposures(after: 0, matching: EventFilter(), limit: 10)
            #expect(page.map(\.exposure) == [exposure])
            #expect(try await log.highWaterMark().exposures == 1)
        }
    }

    @Test func aBadEventRejectsTheWholeBatch() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            var batch = (0..<10).map { Self.event($0) }
            batch[5].user = ""
            await #expect(throws: DuetError.self) { try await log.append(events: batch) }
            #expect(try await log.count(matching: EventFilter()) == 0)
        }
    }

    @Test func atomicAppendRollsBackOnFailure() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            struct Boom: Error {}
            await #expect(throws: Boom.self) {
                try await log.appendAtomically { append in
                    for n in 0..<1_000 { try append(Self.event(n)) }
                    throw Boom()
                }
            }
            #expect(try await log.count(matching: EventFilter()) == 0)
            let appended = try await log.appendAtomically { append in for n in 0..<1_000 { try append(Self.event(n)) } }
            #expect(appended == 1_000)
            #expect(try await log.count(matching: EventFilter()) == 1_000)
        }
    }

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
