import ArgumentParser
import DuetCore
import DuetStore
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks. `../shared/bench/peers.py` drives these and compares Duet with its peers.",
        subcommands: [EventLogBench.self]
    )

    struct EventLogBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "eventlog",
            abstract: "Durable append throughput of the embedded event log, in batches."
        )
        @Option(help: "Events to append.") var events: Int = 200_000
        @Option(help: "Events per durable batch.") var batch: Int = 1_000
        @Option(help: "Folder for the scratch log (default: a new temporary folder).") var dir: String?
        @OptionGroup var output: OutputOptions

        struct Result: Codable {
            var events: Int
            var batch: Int
            var seconds: Double
            var eventsPerSecond: Double
            var batchP50Millis: Double
            var batchP99Millis: Double
        }

        func run() async throws {
            guard events > 0, batch > 0 else { throw ValidationError("--events and --batch must be positive") }
            let folder = URL(fileURLWithPath: dir ?? NSTemporaryDirectory()).appendingPathComponent("duet-bench-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let base = Date().epochMillis
            var batchTimes: [Double] = []
            let clock = ContinuousClock()
            let started = clock.now
            var done = 0
            while done < events {
                let size = min(batch, events - done)
                let slice = (done..<(done + size)).map {
                    FeedbackEvent(user: "u\($0 % 5_000)", item: "t\($0 % 20_000)", kind: .play, weight: 1, timestamp: base + Int64($0))
                }
                let batchStart = clock.now
                try await log.append(events: slice)
                batchTimes.append((clock.now - batchStart).seconds * 1000)
                done += size
            }
            let seconds = (clock.now - started).seconds
            batchTimes.sort()
            let result = Result(events: events, batch: batch, seconds: seconds, eventsPerSecond: Double(events) / seconds,
                                batchP50Millis: batchTimes[batchTimes.count / 2],
                                batchP99Millis: batchTimes[min(batchTimes.count - 1, batchTimes.count * 99 / 100)])
            if output.json { return try printJSON(result) }
            print(String(format: "%d events in batches of %d: %.2f s, %.0f events/s durable (batch p50 %.2f ms, p99 %.2f ms)",
                         events, batch, seconds, result.eventsPerSecond, result.batchP50Millis, result.batchP99Millis))
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
