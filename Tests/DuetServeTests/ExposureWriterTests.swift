import CoreMetrics
import DuetCore
@testable import DuetServe
import DuetStore
import DuetTestSupport
import Foundation
import Logging
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
            let writer = ExposureWriter(log: log, spillFolder: spillFolder, capacity: 2, metrics: metrics, logger: Logger(label: "test"))
            for number in 0..<5 { writer.enqueue(exposure(number)) }
            #expect(writer.pending == 2)
            writer.syncSpill()
            let spilled = try String(contentsOf: writer.spillFile, encoding: .utf8).split(separator: "\n")
            #expect(spilled.count == 3, "the three that did not fit are in the spill file")
            while writer.pending > 0 { await writer.flush() }

            // A later process replays the spill file into the log once, then removes it.
            let next = ExposureWriter(log: log, spillFolder: spillFolder, metrics: metrics, logger: Logger(label: "test"))
            try await next.replaySpills()
            try await next.replaySpills()
            let stored = try await log.exposures(after: 0, matching: EventFilter(), limit: 100).map(\.exposure.requestID)
            #expect(stored.sorted() == (0..<5).map { "r\($0)" })
            #expect(!FileManager.default.fileExists(atPath: writer.spillFile.path))
        }
    }
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
    /// Lines keep swift-log's StreamLogHandler layout; metadata set on the logger, from the provider,
    /// on the call and from an error all appear, sorted, with the call's value winning.
    @Test func rendersStreamLogHandlerLinesWithAllMetadata() {
        var handler = ServeLogHandler(label: "duet-serve", logLevel: .debug)
        handler[metadataKey: "hb.request.id"] = "42"
        handler[metadataKey: "route"] = "old"
        handler.metadataProvider = Logger.MetadataProvider { ["trace": "t1"] }
        struct Broken: Error {}
        let line = handler.render(LogEvent(level: .error, message: "request failed", error: Broken(), metadata: ["route": "/v1/events"],
                                           source: "DuetServe", file: #fileID, function: #function, line: #line))
        #expect(line.contains(" error duet-serve: error.message=Broken() error.type="))
        #expect(line.hasSuffix(" hb.request.id=42 route=/v1/events trace=t1 [DuetServe] request failed\n"))
        #expect(!line.contains("old"))
        #expect(line.first?.isNumber == true, "starts with the timestamp")
    }
}
