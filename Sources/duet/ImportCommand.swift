import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import interactions into a new snapshot (default) or into the event log.",
        discussion: """
            Reading streams the file. A malformed row stops the import with the file, the line and \
            the problem, and nothing is written, unless --skip-bad-rows is given.
            """,
        subcommands: [LastFM.self, MovieLens.self, CSV.self, JSONLines.self, WorldImport.self]
    )

    enum Destination: String, ExpressibleByArgument, CaseIterable {
        case snapshot, events
    }

    struct Common: ParsableArguments {
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions

        @Option(help: "Where rows go: a new content-hashed snapshot, or the event log (one transaction).")
        var into: Destination = .snapshot

        @Flag(help: "Skip malformed rows instead of stopping; they are counted and reported.")
        var skipBadRows = false

        @Option(help: ArgumentHelp("Event kinds a snapshot folds in, comma-separated.", discussion: "Default: every kind but skip and dislike.", valueName: "kinds"))
        var kinds: String?

        func run(_ source: ImportSource) async throws {
            let home = home.resolved
            try home.prepare()
            let kindSet = try parseKinds(kinds)
            let importer = Importer(source: source, skipBadRows: skipBadRows)
            let total = Self.sourceBytes(source)
            let bar = ProgressBar("importing", total: total, unit: "B", quiet: output.json)
            let destination: ImportDestination
            switch into {
            case .snapshot: destination = .snapshot(SnapshotStore(home: home))
            case .events: destination = .eventLog(try await self.home.openEventLog())
            }
            let report = try await ImportPipeline.run(importer, into: destination, kinds: kindSet, progress: { bar.update($0) })
            bar.finish()
            if into == .events, let catalog = try importer.readCatalog() {
                try HomeCatalog(home: home).merge(catalog)
            }
            if output.json { return try printJSON(report) }
            Self.printReport(report, home: home, eventLog: self.home.registryURL ?? home.eventLogPath.path)
        }

        static func sourceBytes(_ source: ImportSource) -> Int? {
            switch source {
            case let .lastfm(folder): fileSize((folder as NSString).appendingPathComponent("user_artists.dat"))
            case let .world(folder): fileSize((folder as NSString).appendingPathComponent(WorldFiles.events))
            case let .movielens(file), let .table(file, _), let .jsonl(file): fileSize(file)
            }
        }

        static func printReport(_ report: ImportReport, home: DuetHome, eventLog: String) {
            let tally = report.tally
            print("Imported \(report.format) from \(report.source) in \(String(format: "%.1f", report.seconds)) s: \(tally.rowsRead) rows read, \(tally.rowsSkipped) skipped")
            for example in tally.skippedExamples { print("  skipped \(example)") }
            if let info = report.snapshot {
                print("  \(info.users) users")
                print("  \(info.items) items")
                print("  \(info.interactions) interactions")
                print("snapshot \(info.hash)")
                print("  \(SnapshotStore(home: home).path(of: info.hash).path) (\(info.bytes) bytes)")
            }
            if let appended = report.eventsAppended {
                print("  \(appended) events appended to \(eventLog)")
            }
            if let catalog = report.catalogItems { print("  \(catalog) catalog items") }
        }
    }

    struct LastFM: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "lastfm", abstract: "HetRec 2011 Last.fm: a folder with user_artists.dat and artists.dat.")
        @Argument(help: "The dataset folder.") var folder: String
        @OptionGroup var common: Common
        func run() async throws { try await common.run(.lastfm(folder: folder)) }
    }

    struct MovieLens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "movielens", abstract: "MovieLens u.data (tab-separated) or ratings.dat ('::'-separated).")
        @Argument(help: "The ratings file.") var file: String
        @OptionGroup var common: Common
        func run() async throws { try await common.run(.movielens(file: file)) }
    }

    struct CSV: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "csv", abstract: "A CSV or TSV file with a header row, mapped by column name.")
        @Argument(help: "The file (.tsv or .tab is read as tab-separated unless --delimiter says otherwise).") var file: String
        @Option(help: "Column holding the user id.") var userCol: String
        @Option(help: "Column holding the item id.") var itemCol: String
        @Option(help: "Column holding the weight (default: 1 per row).") var weightCol: String?
        @Option(help: "Column holding the time: epoch seconds, epoch ms or ISO 8601 (default: 0).") var timeCol: String?
        @Option(help: "Column holding the event kind (default: play).") var kindCol: String?
        @Option(help: "Field delimiter, e.g. ',' or '\\t'.") var delimiter: String?
        @OptionGroup var common: Common

        func validate() throws {
            if let delimiter, delimiter.isEmpty { throw ValidationError("--delimiter must not be empty") }
        }

        func run() async throws {
            let resolvedDelimiter = delimiter.map { $0 == "\\t" ? "\t" : $0 }
            let mapping = ColumnMapping(user: userCol, item: itemCol, weight: weightCol, time: timeCol, kind: kindCol,
                                        delimiter: resolvedDelimiter)
            try await common.run(.table(file: file, mapping: mapping))
        }
    }

    struct JSONLines: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "jsonl", abstract: "JSON Lines, one FeedbackEvent per line ({\"user\",\"item\",\"kind\",\"weight\",\"timestamp\"}).")
        @Argument(help: "The file.") var file: String
        @OptionGroup var common: Common
        func run() async throws { try await common.run(.jsonl(file: file)) }
    }

    struct WorldImport: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "world", abstract: "A synthetic world folder from 'duet world generate'.")
        @Argument(help: "The world folder.") var folder: String
        @OptionGroup var common: Common
        func run() async throws { try await common.run(.world(folder: folder)) }
    }
}

func parseKinds(_ text: String?) throws -> Set<EventKind>? {
    guard let text else { return nil }
    let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !parts.isEmpty else { throw ValidationError("--kinds names no kind") }
    return Set(try parts.map { try EventKind.validated($0) })
}
