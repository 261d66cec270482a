import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import Foundation

struct ShadowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shadow",
        abstract: "Score a candidate beside production on a share of requests, never shown: overlap, rank correlation, would-have-been-played.",
        discussion: """
            Serve computes the candidate's list for a sampled share of requests (by request id) and logs it apart \
            from exposures, so no metric counts it as shown. Stop it with `duet lab shadow stop ID`.
            """,
        subcommands: [Start.self, Report.self, Stop.self]
    )

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start shadowing a bundle.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Bundle id or prefix.") var bundle: String
        @Option(help: "Share of requests to shadow, e.g. 0.1.") var share: Double = 0.1
        @Option(help: "Shadow id (default: shadow-<bundle>-<time>).") var id: String?

        func run() async throws {
            let spec = try await home.lab().startShadow(candidate: bundle, share: share, actor: try person.resolved(), id: id)
            print("shadow \(spec.id) started: \(spec.arms[1].bundleID.prefix(12)) scored beside production \(spec.arms[0].bundleID.prefix(12)) on \(String(format: "%g%%", share * 100)) of requests")
        }
    }

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compare the shadow's lists with the lists production showed.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Shadow id.") var id: String
        @Option(help: "Compare the top K of each list.") var k: Int = 10

        func run() async throws {
            let report = try await home.lab().shadowReport(id, eventLog: try await home.openEventLog(), k: k)
            if output.json { return try printJSON(report) }
            report.textLines.forEach { print($0) }
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop shadowing; the logged lists stay for reports.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Shadow id.") var id: String

        func run() async throws {
            try await home.lab().stopShadow(id)
            print("shadow \(id) stopped")
        }
    }
}
