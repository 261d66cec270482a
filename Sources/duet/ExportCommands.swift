import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Files for Python: factors as .npy, snapshots and splits as scipy CSR .npz, per-user metrics and events as CSV.",
        discussion: """
            Every file is written under a temporary name and renamed into place, so a failed export leaves \
            nothing half-written; every export streams, so memory does not grow with the data. \
            docs/python.md shows how to load each one.
            """,
        subcommands: [Factors.self, SnapshotExport.self, Evaluation.self, Experiment.self, Events.self]
    )

    static func report(_ files: [ExportedFile], json: Bool) throws {
        if json { return try printJSON(files) }
        for file in files { print("\(file.path)  \(file.bytes) bytes  \(file.contents)") }
    }

    struct Factors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A bundle's factors: user_factors.npy, item_factors.npy, popularity.npy, users.txt, items.txt.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Bundle id, prefix or 'production'.") var bundle: String
        @Option(help: "Folder to write into (created if missing).") var out: String

        func run() async throws {
            let lab = try await home.lab()
            try ExportCommand.report(try await lab.exportFactors(bundle, to: URL(fileURLWithPath: out)), json: output.json)
        }
    }

    struct SnapshotExport: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "snapshot",
            abstract: "A snapshot as interactions.npz (scipy CSR, users × items), or a split as train.npz and test.npz; with users.txt and items.txt.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Snapshot hash, prefix or 'latest' (default: latest, or the split's snapshot).") var snapshot: String?
        @Option(help: "Export this split's parts instead of the whole snapshot.") var split: String?
        @Option(help: "Folder to write into (created if missing).") var out: String

        func run() async throws {
            let lab = try await home.lab()
            try ExportCommand.report(try lab.exportSnapshot(snapshot, split: split, to: URL(fileURLWithPath: out)), json: output.json)
        }
    }

    struct Evaluation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-user offline metrics of a candidate and a baseline on the candidate's held-out split, as CSV.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Candidate bundle (id or prefix).") var candidate: String
        @Option(help: "'production', 'popularity' or a bundle id.") var baseline: String = "production"
        @Option(help: "Cut-off of the ranking metrics.") var k: Int = 10
        @Option(help: "CSV file to write.") var out: String

        func run() async throws {
            guard k > 0 else { throw ValidationError("--k must be positive") }
            let lab = try await home.lab()
            let file = try await lab.exportEvaluation(candidate: candidate, baseline: baseline, k: k, to: URL(fileURLWithPath: out))
            try ExportCommand.report([file], json: output.json)
        }
    }

    struct Experiment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-user tallies of an experiment's phase, with each user's arm, as CSV.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Experiment id.") var experiment: String
        @Option(help: "Phase (default: the current one).") var phase: Int?
        @Option(help: "Hours after an exposure in which a play counts.") var attributionHours: Double = 24
        @Option(help: "CSV file to write.") var out: String

        func run() async throws {
            guard attributionHours > 0, attributionHours <= 24 * 30 else { throw ValidationError("--attribution-hours must be in (0, 720]") }
            let lab = try await home.lab()
            let file = try await lab.exportExperiment(experiment, phase: phase, attributionHours: attributionHours,
                                                      eventLog: try await home.openEventLog(), to: URL(fileURLWithPath: out))
            try ExportCommand.report([file], json: output.json)
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A time slice of the event log as CSV or JSON lines; `duet import csv|jsonl` reads either back.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Only events at or after this time (ISO 8601 or epoch seconds).") var from: String?
        @Option(help: "Only events before this time (ISO 8601 or epoch seconds).") var until: String?
        @Option(help: "Event kinds, comma-separated (default: all).") var kinds: String?
        @Option(help: "csv or jsonl (default: from the file's extension).") var format: String?
        @Option(help: "File to write.") var out: String

        func run() async throws {
            let chosen = format ?? (out.hasSuffix(".jsonl") || out.hasSuffix(".ndjson") ? "jsonl" : "csv")
            guard let exportFormat = EventExportFormat(rawValue: chosen) else {
                throw ValidationError("--format '\(chosen)' is not one of \(EventExportFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let filter = EventFilter(from: try parseTime(from, "--from"), until: try parseTime(until, "--until"), kinds: try parseKinds(kinds))
            if let from = filter.from, let until = filter.until, from >= until { throw ValidationError("--from must be before --until") }
            let file = try await Lab.exportEvents(from: try await home.openEventLog(), filter: filter, format: exportFormat, to: URL(fileURLWithPath: out))
            try ExportCommand.report([file], json: output.json)
        }
    }
}
