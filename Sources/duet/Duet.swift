import ArgumentParser
import DuetCore
import Foundation
import DuetLab
import DuetStore
import Synchronization
import Logging

@main
struct Duet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "duet",
        abstract: "Duet: a recommendation platform built as two systems, Serve and Lab.",
        discussion: """
            Serve answers live requests from immutable model bundles. Lab freezes data, trains and \
            evaluates models, runs A/B tests and promotes what wins. They meet only through the \
            registry and the event log, kept in one home folder (--home, DUET_HOME, or ./duet-home).
            """,
        version: "0.1.0",
        subcommands: [DemoCommand.self, ServeCommand.self, SimilarCommand.self, WorldCommand.self, ImportCommand.self, LabCommand.self,
                      EventsCommand.self, BenchCommand.self]
    )
}

/// `--home` and `--json`, shared by every command that touches a deployment.
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The deployment's folder.", discussion: "Falls back to $DUET_HOME, then ./duet-home.", valueName: "dir"))
    var home: String?

    @Option(name: .long, help: ArgumentHelp("Registry and event log on PostgreSQL, e.g. postgres://user:pass@host:5432/duet.",
                                            discussion: "Falls back to $DUET_REGISTRY; without either, the home's SQLite files.", valueName: "url"))
    var registry: String?

    var resolved: DuetHome { DuetHome.resolve(flag: home) }

    var registryURL: String? {
        registry ?? ProcessInfo.processInfo.environment["DUET_REGISTRY"].flatMap { $0.isEmpty ? nil : $0 }
    }

    func openRegistry(readOnly: Bool = false) async throws -> any Registry {
        if let url = registryURL { return try await PostgresRegistry(database: try SharedPostgres.database(url), readOnly: readOnly) }
        return try SQLiteRegistry(path: resolved.registryPath.path, readOnly: readOnly)
    }

    func openEventLog() async throws -> any EventLog {
        if let url = registryURL { return try await PostgresEventLog(database: try SharedPostgres.database(url)) }
        try resolved.prepare()
        return try SQLiteEventLog(path: resolved.eventLogPath.path)
    }

    func lab() async throws -> Lab { try Lab(home: resolved, registry: try await openRegistry()) }
}

/// One connection pool per URL for the life of the process, driven by a background task.
enum SharedPostgres {
    private static let pools = Mutex<[String: PostgresDatabase]>([:])

    static func database(_ url: String) throws -> PostgresDatabase {
        try pools.withLock { pools in
            if let existing = pools[url] { return existing }
            var logger = Logger(label: "duet-postgres")
            logger.logLevel = .error
            let database = try PostgresDatabase(url: url, logger: logger)
            Task.detached { await database.run() }
            pools[url] = database
            return database
        }
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object instead of text, for scripts.")
    var json = false
}

/// Prints a Codable value as one line of JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

