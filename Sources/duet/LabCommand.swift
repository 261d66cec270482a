import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "The experimentation system: snapshots, training, evaluation, experiments, decisions.",
        subcommands: [SnapshotCommand.self, SplitCommand.self, TrainCommand.self, EvaluateCommand.self, CompareCommand.self,
                      PromoteCommand.self, RollbackCommand.self, RejectCommand.self, HistoryCommand.self, ModelsCommand.self, ShowCommand.self,
                      VerifyCommand.self, ExperimentCommand.self, HoldoutCommand.self, RecipeCommand.self, RecipesCommand.self, LineageCommand.self, RefreshCommand.self, RolloutCommand.self, ShadowCommand.self, IndexCommand.self, CutoverCommand.self, MemoryCommand.self, AnalyzeCommand.self, DecideCommand.self, ReviewCommand.self, PeopleCommand.self, OwnerCommand.self, WebhookCommand.self, IncidentCommand.self,
                      SimulateCommand.self, StatsCommand.self, PowerCommand.self, TuneCommand.self, DashboardCommand.self, MigrateCommand.self, GrantsCommand.self, ExportCommand.self]
    )
}

struct SnapshotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Freeze interactions from the event log into an immutable, content-hashed snapshot.",
        discussion: """
            The log is read up to its newest event at the start, so the same call always gives the \
            same snapshot. Without a subcommand, creates a snapshot; `info` and `list` inspect them.
            """,
        subcommands: [Create.self, Info.self, List.self],
        defaultSubcommand: Create.self
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Freeze the event log (or part of it).")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "Only events at or after this time (ISO 8601 or epoch seconds).") var from: String?
        @Option(help: "Only events before this time (ISO 8601 or epoch seconds).") var until: String?
        @Option(help: "Event kinds to fold in, comma-separated (default: all but skip and dislike).") var kinds: String?

        func run() async throws {
            let options = self.home
            let home = options.resolved
            if options.registryURL == nil, !FileManager.default.fileExists(atPath: home.eventLogPath.path) {
                throw DuetError.notFound(kind: "event log", id: home.eventLogPath.path + " (import with --into events first)")
            }
            try home.prepare()
            let log = try await options.openEventLog()
            let bar = ProgressBar("freezing", total: nil, unit: "events", quiet: output.json)
            let info = try await ImportPipeline.snapshotFromEventLog(
                log, store: SnapshotStore(home: home), from: try parseTime(from, "--from"), until: try parseTime(until, "--until"),
                kinds: try parseKinds(kinds), catalog: try HomeCatalog(home: home).load()) { bar.update($0) }
            bar.finish()
            if output.json { return try printJSON(info) }
            printSnapshot(info, store: SnapshotStore(home: home))
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "info", abstract: "Show a snapshot's counts and origin.")
        @Argument(help: "Hash, unique hash prefix, 'latest', or a path to a .dsnap file.") var snapshot: String = "latest"
        @Flag(help: "Recompute the SHA-256 of the file and compare it with its name.") var verify = false
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let store = SnapshotStore(home: home.resolved)
            let opened = try store.open(snapshot, verifyHash: verify)
            let info = (try? store.info(opened.hash)) ?? SnapshotInfo(unrecorded: opened)
            if output.json { return try printJSON(info) }
            printSnapshot(info, store: store)
            if verify { print("  sha256 verified") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the home's snapshots, oldest first.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let infos = try SnapshotStore(home: home.resolved).list()
            if output.json { return try printJSON(infos) }
            if infos.isEmpty { print("no snapshots in \(home.resolved.snapshotsFolder.path)") }
            for info in infos {
                print("\(info.hash.prefix(12))  \(info.users) users  \(info.items) items  \(info.interactions) interactions  \(info.format): \(info.source)")
            }
        }
    }
}

func printSnapshot(_ info: SnapshotInfo, store: SnapshotStore) {
    print("snapshot \(info.hash)")
    print("  \(info.users) users")
    print("  \(info.items) items")
    print("  \(info.interactions) interactions")
    if let first = info.firstEvent, let last = info.lastEvent, last > 0 {
        print("  events from \(TimestampParser.iso8601String(first)) to \(TimestampParser.iso8601String(last))")
    }
    print("  from \(info.format): \(info.source)")
    print("  \(store.path(of: info.hash).path) (\(info.bytes) bytes)\(info.hasCatalog ? ", with catalog" : "")")
}

func parseTime(_ text: String?, _ flag: String) throws -> EpochMillis? {
    guard let text else { return nil }
    guard let value = TimestampParser.epochMillis(Substring(text)) else {
        throw ValidationError("\(flag) '\(text)' is neither ISO 8601 nor epoch seconds")
    }
    return value
}
