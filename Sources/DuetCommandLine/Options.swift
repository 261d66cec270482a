public import ArgumentParser
package import DuetCore
package import DuetLab
package import DuetStore
package import DuetTraining
import Foundation
import Logging
import Synchronization

// Option groups and output helpers shared by the `duet` executable and the `duet bench` commands.

/// `--home` and `--json`, shared by every command that touches a deployment.
package struct HomeOptions: ParsableArguments {
    package init() {}

    @Option(name: .long, help: ArgumentHelp("The deployment's folder.", discussion: "Falls back to $DUET_HOME, then ./duet-home.", valueName: "dir"))
    package var home: String?

    @Option(name: .long, help: ArgumentHelp("Registry and event log on PostgreSQL, e.g. postgres://user:pass@host:5432/duet.",
                                            discussion: "Falls back to $DUET_REGISTRY; without either, the home's SQLite files.", valueName: "url"))
    package var registry: String?

    @Option(name: .long, help: ArgumentHelp("A JSON configuration file (see `duet config print`).",
                                            discussion: "Falls back to $DUET_CONFIG. Flags beat environment variables, which beat the file.", valueName: "file"))
    package var config: String?

    /// Reads the configuration file before any command runs, so a bad one stops it with the reason.
    package func validate() throws {
        _ = try ConfigurationFile.named(flag: config)
    }

    /// Settings by precedence: flag, DUET_* environment variable, configuration file, default.
    package var settings: SettingsResolver {
        // validate() has read the file already; a file that went bad since is read as none.
        SettingsResolver(file: (try? ConfigurationFile.named(flag: config)) ?? .none)
    }

    package var resolved: DuetHome { DuetHome(root: URL(fileURLWithPath: settings.text(DuetSettings.home, flag: home)?.text ?? "duet-home")) }

    package var registryURL: String? { settings.text(DuetSettings.registry, flag: registry)?.text }

    /// The Lab's writing registry; it creates and migrates the schema.
    package func openRegistry() async throws -> any LabRegistry {
        if let url = registryURL {
            #if Postgres
            return try await PostgresRegistry(database: try await SharedPostgres.database(url))
            #else
            throw PostgresSupport.missing(for: url)
            #endif
        }
        return try SQLiteRegistry(path: resolved.registryPath.path)
    }

    package func openEventLog() async throws -> any EventLog {
        if let url = registryURL {
            #if Postgres
            return try await PostgresEventLog(database: try await SharedPostgres.database(url))
            #else
            throw PostgresSupport.missing(for: url)
            #endif
        }
        try resolved.prepare()
        return try SQLiteEventLog(path: resolved.eventLogPath.path)
    }

    /// Serve's two handles: the registry read-only and the event log append-only. On PostgreSQL they
    /// use `serveURL` (Serve's own role), never migrate, and refuse a schema they do not know.
    package func openForServe(serveURL: String?, ingestTimeout: Duration) async throws -> (source: any ServingSource, log: any EventSink & EventTail) {
        if let url = serveURL ?? registryURL {
            #if Postgres
            let database = try await SharedPostgres.database(url)
            return (try await PostgresServingSource(database: database), try await PostgresEventLog(servingDatabase: database))
            #else
            throw PostgresSupport.missing(for: url)
            #endif
        }
        return (try SQLiteServingSource(path: resolved.registryPath.path),
                try SQLiteEventLog(path: resolved.eventLogPath.path, busyTimeout: ingestTimeout / 2))
    }

    package func lab() async throws -> Lab { try Lab(home: resolved, registry: try await openRegistry()) }
}

#if Postgres
/// One connection pool per URL for the life of the process, driven by a background task.
package enum SharedPostgres {
    private static let pools = Mutex<[String: PostgresDatabase]>([:])

    /// The URL's pool; the first call checks one connection, so a wrong password, CA or host name
    /// fails at once with the server's or the handshake's words.
    package static func database(_ url: String) async throws -> PostgresDatabase {
        if let existing = pools.withLock({ $0[url] }) { return existing }
        var logger = Logger(label: "duet-postgres")
        logger.logLevel = .error
        let database = try PostgresDatabase(url: url, logger: logger)
        try await database.checkConnection()
        return pools.withLock { pools in
            if let existing = pools[url] { return existing }
            Task.detached { await database.run() }
            pools[url] = database
            return database
        }
    }
}
#endif

package struct OutputOptions: ParsableArguments {
    package init() {}

    @Flag(name: .long, help: "Print one JSON object instead of text, for scripts.")
    package var json = false
}

/// Prints a Codable value as one line of JSON on stdout.
package func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}


/// ALS hyperparameters as flags, shared by `bench als`, `lab train` and `lab tune`.
package struct ALSOptions: ParsableArguments {
    package init() {}

    @Option(help: "Latent factors.") package var factors: Int = 64
    @Option(help: "L2 regularization λ.") package var regularization: Float = 1
    @Option(help: "Confidence scale: c = alpha · w'.") package var alpha: Float = 2
    @Option(help: "ALS iterations.") package var iterations: Int = 15
    @Option(help: "Conjugate-gradient steps per solve.") package var cgSteps: Int = ALSConfiguration().cgSteps
    @Option(help: "Weight transform before alpha: raw, log1p or bm25.") package var weighting: Weighting = .log1p
    @Option(help: "Worker threads.") package var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Random seed.") package var seed: UInt64 = 42
    @Flag(help: "Compute and show the training loss each iteration.") package var loss = false

    package func configuration() throws -> ALSConfiguration {
        var configuration = ALSConfiguration()
        configuration.factors = factors
        configuration.regularization = regularization
        configuration.alpha = alpha
        configuration.iterations = iterations
        configuration.cgSteps = cgSteps
        configuration.weighting = weighting
        configuration.threads = threads
        configuration.seed = seed
        configuration.computeLoss = loss
        try configuration.validate()
        return configuration
    }
}

extension Weighting: ExpressibleByArgument {}

/// Item-kNN's settings, for `lab train --algo item-knn` and `lab index build --knn-snapshot`.
package struct ItemKNNOptions: ParsableArguments {
    package init() {}

    @Option(help: "Item-kNN: neighbours kept per item.") package var neighbours: Int = 100
    @Option(help: "Item-kNN: bm25 (the cosine of BM25-weighted plays) or cosine (of the raw weights).") package var similarity: ItemKNNConfiguration.Similarity = .bm25
    @Option(help: "Item-kNN: added to the cosine's denominator, so pairs with few shared users score lower.") package var shrinkage: Float = 10
    @Option(help: "Item-kNN: fewest shared users for a pair to count.") package var minSupport: Int = 2

    package func configuration(threads: Int) throws -> ItemKNNConfiguration {
        var configuration = ItemKNNConfiguration()
        configuration.neighbours = neighbours
        configuration.similarity = similarity
        configuration.shrinkage = shrinkage
        configuration.minimumSupport = minSupport
        configuration.threads = threads
        try configuration.validate()
        return configuration
    }
}

extension ItemKNNConfiguration.Similarity: ExpressibleByArgument {}

/// `--as NAME`: who is acting. Every review entry, decision and production change names a person.
package struct ActorOptions: ParsableArguments {
    package init() {}

    @Option(name: .customLong("as"), help: ArgumentHelp("Who is acting.", discussion: "Falls back to $DUET_USER, then $USER.", valueName: "name"))
    package var name: String?

    package func resolved() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        for candidate in [name, environment["DUET_USER"], environment["USER"]] {
            if let candidate, !candidate.isEmpty { return candidate }
        }
        throw ValidationError("name who is acting with --as NAME or DUET_USER")
    }
}
