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
