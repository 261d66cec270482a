import DuetCore
import DuetStore
import DuetTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SIGKILL a writer mid-stream, reopen the log: every acknowledged event must be there.
@Suite struct CrashSafetyTests {
    /// The `duet` executable `swift test` builds next to the test bundle.
    static var duetBinary: URL {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("duet")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return SharedData.packageRoot.appendingPathComponent(".build/debug/duet")
    }

    @Test func killedWriterLosesNoAcknowledgedEvent() async throws {
        let binary = Self.duetBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "duet must be built at \(binary.path)")
        try await withScratchFolder { folder in
            for round in 0..<3 {
                let process = Process()
                process.executableURL = binary
                process.arguments = ["events", "append-stream", "--home", folder.path, "--batch", "500",
                                     "--batches", "100000", "--user", "crash-\(round)"]
                let output = Pipe()
                process.standardOutput = output
                process.standardError = FileHandle.nullDevice
                try process.run()
                var text = ""
                // Kill after a few acknowledgements, at a different point each round.
                while text.components(separatedBy: "acked").count <= 5 + round * 7 {
                    let chunk = output.fileHandleForReading.availableData
                    if chunk.isEmpty { break }
                    text += String(decoding: chunk, as: UTF8.self)
                }
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                text += String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                #expect(process.terminationReason == .uncaughtSignal)
                let acknowledged = text.split(separator: "\n").compactMap { line in
                    line.hasPrefix("acked ") ? Int(line.dropFirst(6)) : nil
                }.max() ?? 0
                #expect(acknowledged >= 2_500)

                let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
                var items = Set<String>()
                try await log.forEachEvent(matching: EventFilter()) { page in
                    for stored in page where stored.event.user == "crash-\(round)" { items.insert(stored.event.item) }
                }
                let missing = (0..<acknowledged).filter { !items.contains("i\($0)") }
                #expect(missing.isEmpty, "round \(round): \(missing.count) acknowledged events lost, e.g. \(missing.prefix(3))")
                #expect(items.count >= acknowledged)
            }
        }
    }
}
