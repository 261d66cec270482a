import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetStore
import Foundation

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Inspect the event log.",
        subcommands: [Stats.self, AppendStream.self]
    )

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count events (by kind) and exposures.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Count only events of these kinds, comma-separated.") var kinds: String?

        struct Result: Codable {
            var events: Int
            var exposures: Int64
            var lastEventSequence: Int64
        }

        func run() async throws {
            let path = home.registryURL ?? home.resolved.eventLogPath.path
            if home.registryURL == nil, !FileManager.default.fileExists(atPath: path) { throw DuetError.notFound(kind: "event log", id: path) }
            let log = try await home.openEventLog()
            let mark = try await log.highWaterMark()
            let count = try await log.count(matching: EventFilter(kinds: try parseKinds(kinds)))
            let result = Result(events: count, exposures: mark.exposures, lastEventSequence: mark.events)
            if output.json { return try printJSON(result) }
            print("\(count) events (last sequence \(mark.events)), \(mark.exposures) exposures in \(path)")
        }
    }

    /// Appends numbered events in durable batches and prints each acknowledgement: the writer half
    /// of the crash-safety check (`scripts/eventlog-crash.sh` kills it with SIGKILL mid-stream).
    struct AppendStream: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "append-stream",
            abstract: "Append numbered events in durable batches, printing 'acked N' after each (for crash tests).",
            shouldDisplay: false
        )
        @OptionGroup var home: HomeOptions
        @Option(help: "Events per batch.") var batch: Int = 1_000
        @Option(help: "Batches to append.") var batches: Int = 1_000
        @Option(help: "User id of the stream, so several streams can share a log.") var user: String = "crash-test"

        func run() async throws {
            let log = try await home.openEventLog()
            var next = 0
            for _ in 0..<batches {
                let events = (next..<(next + batch)).map {
                    FeedbackEvent(user: user, item: "i\($0)", kind: .play, weight: 1, timestamp: Date().epochMillis)
                }
                try await log.append(events: events)
                next += batch
                // Unbuffered, so every acknowledgement printed was really made before a kill.
                FileHandle.standardOutput.write(Data("acked \(next)\n".utf8))
            }
        }
    }
}
