import CoreMetrics
import DuetCore
@testable import DuetServe
import DuetStore
import DuetTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@Suite struct ExposureWriterTests {
    func exposure(_ number: Int) -> Exposure {
        Exposure(requestID: "r\(number)", user: "u\(number)", timestamp: 1_767_225_600_000 + Int64(number), items: ["a", "b"], bundleID: "bundle")
    }

    @Test func aFullQueueSpillsAndTheNextStartReplaysEverything() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let spillFolder = folder.appendingPathComponent("spill")
            let metrics = ServeMetrics(factory: NOOPMetricsHandler.instance)
            var writer: ExposureWriter? = ExposureWriter(log: log, spillFolder: spillFolder, capacity: 2, metrics: metrics, logger: Logger(label: "test"))
            for number in 0..<5 { writer!.enqueue(exposure(number)) }
            #expect(writer!.pending == 2)
            writer!.syncSpill()
            let spillFile = try #require(writer!.spillFile)
            let spilled = try String(contentsOf: spillFile, encoding: .utf8).split(separator: "\n")
            #expect(spilled.count == 3, "the three that did not fit are in the spill file")
            while writer!.pending > 0 { await writer!.flush() }
            writer = nil  // the process ends; the kernel releases its lock

            // A later process replays the spill file into the log once, then removes it.
            let next = ExposureWriter(log: log, spillFolder: spillFolder, metrics: metrics, logger: Logger(label: "test"))
            await next.replaySpills()
            await next.replaySpills()
            let stored = try await log.exposures(after: 0, matching: EventFilter(), limit: 100).map(\.exposure.requestID)
            #expect(stored.sorted() == (0..<5).map { "r\($0)" })
            #expect(!FileManager.default.fileExists(atPath: spillFile.path))
        }
    }

    /// Two writers on one home: neither replays a spill file the other still holds, a file whose
    /// replay fails is kept, and once its owner lets go every exposure is stored exactly once.
    @Test func twoWritersShareAHomeWithoutTakingEachOthersSpills() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let sink = FlakySink(log)
            let spillFolder = folder.appendingPathComponent("spill")
            let metrics = ServeMetrics(factory: NOOPMetricsHandler.instance)
            var first: ExposureWriter? = ExposureWriter(log: sink, spillFolder: spillFolder, metrics: metrics, logger: Logger(label: "first"))
            let second = ExposureWriter(log: sink, spillFolder: spillFolder, metrics: metrics, logger: Logger(label: "second"))
            // The store is down: the first writer's batch spills.
            sink.failing.store(true, ordering: .relaxed)
            for number in 0..<4 { first!.enqueue(exposure(number)) }
            await first!.flush()
            let held = try #require(first!.spillFile)
            #expect(FileManager.default.fileExists(atPath: held.path))
            // The store is back, but the first writer is alive and holds its file: the second leaves it.
            sink.failing.store(false, ordering: .relaxed)
            await second.replaySpills()
            #expect(FileManager.default.fileExists(atPath: held.path))
            #expect(try await log.exposures(after: 0, matching: EventFilter(), limit: 10).isEmpty)
            // Released (rotated, or its process gone) but the store fails again: the replay keeps the file.
            first!.rotateSpill()
            sink.failing.store(true, ordering: .relaxed)
            await second.replaySpills()
            #expect(FileManager.default.fileExists(atPath: held.path))
            // The store returns: replayed once, removed; a second sweep (or a racing one) stores nothing twice.
            sink.failing.store(false, ordering: .relaxed)
            try await log.append(exposures: [exposure(2)])  // one of them already arrived another way
            await second.replaySpills()
            await second.replaySpills()
            first = nil
            let stored = try await log.exposures(after: 0, matching: EventFilter(), limit: 10).map(\.exposure.requestID)
            #expect(stored.sorted() == ["r0", "r1", "r2", "r3"])
            #expect(!FileManager.default.fileExists(atPath: held.path))
        }
    }

    /// A torn last line (a crash before its fsync) is the one thing a replay counts as lost.
    @Test func onlyUnreadableLinesCountAsLost() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let spillFolder = folder.appendingPathComponent("spill")
            try FileManager.default.createDirectory(at: spillFolder, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            var text = try [0, 1].map { String(decoding: try encoder.encode(exposure($0)), as: UTF8.self) }.joined(separator: "\n")
            text += "\n{\"requestID\":\"r2\",\"us"
            try Data(text.utf8).write(to: spillFolder.appendingPathComponent("exposures-999-dead.jsonl"))
            let metrics = TestCounters()
            let writer = ExposureWriter(log: log, spillFolder: spillFolder, metrics: ServeMetrics(factory: metrics), logger: Logger(label: "test"))
            await writer.replaySpills()
            #expect(try await log.exposures(after: 0, matching: EventFilter(), limit: 10).count == 2)
            #expect(metrics.total("duet_exposures_lost_total") == 1)
            #expect(metrics.total("duet_exposures_replayed_total") == 2)
        }
    }
}

/// The real log behind a switch that makes every append fail, as an unreachable store does.
final class FlakySink: EventSink {
    let log: SQLiteEventLog
    let failing = Atomic<Bool>(false)
    struct Down: Error {}

    init(_ log: SQLiteEventLog) { self.log = log }

    func append(events: [FeedbackEvent]) async throws -> Int64? {
        if failing.load(ordering: .relaxed) { throw Down() }
        return try await log.append(events: events)
    }

    func append(shadows: [ShadowExposure]) async throws {
        if failing.load(ordering: .relaxed) { throw Down() }
        try await log.append(shadows: shadows)
    }

    func append(exposures: [Exposure]) async throws -> Int64? {
        if failing.load(ordering: .relaxed) { throw Down() }
        return try await log.append(exposures: exposures)
    }

    func replay(exposures: [Exposure]) async throws -> Int {
        if failing.load(ordering: .relaxed) { throw Down() }
        return try await log.replay(exposures: exposures)
    }

    func append(events: [FeedbackEvent], batchKey: String) async throws -> BatchReceipt {
        if failing.load(ordering: .relaxed) { throw Down() }
        return try await log.append(events: events, batchKey: batchKey)
    }
}

/// Counters by label, for tests that read what Serve counted.
final class TestCounters: MetricsFactory, @unchecked Sendable {
    final class Handler: CounterHandler, @unchecked Sendable {
        let lock = NSLock()
        var value: Int64 = 0
        func increment(by amount: Int64) { lock.withLock { value += amount } }
        func reset() { lock.withLock { value = 0 } }
    }
    let lock = NSLock()
    var counters: [String: Handler] = [:]

    func total(_ label: String) -> Int64 {
        let handler = lock.withLock { counters[label] }
        return handler.map { found in found.lock.withLock { found.value } } ?? 0
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        lock.withLock {
            if let existing = counters[label] { return existing }
            let handler = Handler()
            counters[label] = handler
            return handler
        }
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { NOOPMetricsHandler.instance }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { NOOPMetricsHandler.instance }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

@Suite struct RequestIDTests {
    @Test func idsAreTimeOrderedVersion7UUIDsThatNeverRepeat() throws {
        let ids = RequestIDs(nonce: 0x3FF_FFFF_FFFF)
        let first = ids.next(milliseconds: 1_767_225_600_000)
        let parsed = try #require(UUID(uuidString: first), "\(first) is not a UUID")
        #expect(parsed.uuidString.lowercased() == first)
        let characters = Array(first)
        #expect(characters[14] == "7", "version nibble")
        #expect("89ab".contains(characters[19]), "RFC 9562 variant")
        #expect(first.hasPrefix("019b76da-a800"), "48-bit millisecond timestamp first")

        var seen = Set([first])
        var previous = first
        for step in 1...20_000 {
            let id = ids.next(milliseconds: 1_767_225_600_000 + Int64(step / 1000))
            #expect(seen.insert(id).inserted, "\(id) repeated")
            #expect(String(id.prefix(13)) >= String(previous.prefix(13)), "timestamps sort")
            previous = id
        }
        let other = RequestIDs(nonce: 1).next(milliseconds: 1_767_225_600_000)
        #expect(other != first, "another replica's nonce gives another id")
    }
}

@Suite struct ServeLogHandlerTests {
    static func event() -> LogEvent {
        struct Broken: Error {}
        return LogEvent(level: .error, message: #"request "x" failed"#, error: Broken(), metadata: ["route": "/v1/events", "msg": "clash", "odd key": ""],
                        source: "DuetServe", file: #fileID, function: #function, line: #line)
    }

    static func handler(_ format: LogFormat) -> ServeLogHandler {
        var handler = ServeLogHandler(label: "duet-serve", logLevel: .debug, format: format)
        handler[metadataKey: "hb.request.id"] = "42"
        handler[metadataKey: "route"] = "old"
        handler.metadataProvider = Logger.MetadataProvider { ["trace": "t 1"] }
        return handler
    }

    /// logfmt as its parsers read it: a bare value has no space, '=' or quote; any other is quoted
    /// and escaped. Metadata from the logger, the provider, the call and an error all appear, the
    /// call's value winning, and a key named like a fixed field does not replace it.
    @Test func logfmtLinesParseBackToTheirFields() throws {
        let line = Self.handler(.logfmt).render(Self.event())
        #expect(line.hasSuffix("\n") && !line.dropLast().contains("\n"))
        var fields: [String: String] = [:]
        var rest = Substring(line.dropLast())
        while !rest.isEmpty {
            let key = rest.prefix { $0 != "=" }
            rest = rest.dropFirst(key.count + 1)
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let character = rest.first, character != "\"" {
                    if character == "\\" { rest = rest.dropFirst(); value.append(rest.first ?? "?") } else { value.append(character) }
                    rest = rest.dropFirst()
                }
                rest = rest.dropFirst()
            } else {
                value = String(rest.prefix { $0 != " " })
                rest = rest.dropFirst(value.count)
            }
            fields[String(key)] = value
            rest = rest.drop { $0 == " " }
        }
        #expect(fields["level"] == "error" && fields["logger"] == "duet-serve" && fields["source"] == "DuetServe")
        #expect(fields["msg"] == #"request "x" failed"#)
        #expect(fields["meta.msg"] == "clash")
        #expect(fields["route"] == "/v1/events" && fields["hb.request.id"] == "42" && fields["trace"] == "t 1" && fields["odd_key"] == "")
        #expect(fields["error.message"] == "Broken()")
        #expect(fields["time"]?.hasSuffix("Z") == true)
    }

    @Test func jsonLinesAreJSONObjects() throws {
        let line = Self.handler(.json).render(Self.event())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["msg"] == #"request "x" failed"# && object["level"] == "error" && object["route"] == "/v1/events" && object["trace"] == "t 1")
        #expect(object["meta.msg"] == "clash" && object["odd key"] == "")
        #expect(ServeLogHandler.jsonString("a\u{1}b") == #""a\u0001b""#)
    }
}
