import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetStore
import Foundation

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create or bring up to date the registry and event log schema (the Lab owns it; Serve never migrates)."
    )
    @OptionGroup var home: HomeOptions

    func run() async throws {
        if let url = home.registryURL {
            #if Postgres
            let database = try await SharedPostgres.database(url)
            try await PostgresSchema.migrate(database)
            print("schema at \(database.redactedURL) is current: \(PostgresSchema.migrations.joined(separator: ", "))")
            #else
            throw PostgresSupport.missing(for: url)
            #endif
        } else {
            try home.resolved.prepare()
            _ = try SQLiteRegistry(path: home.resolved.registryPath.path)
            _ = try SQLiteEventLog(path: home.resolved.eventLogPath.path)
            print("registry and event log in \(home.resolved.root.path) are current")
        }
    }
}

struct GrantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "Print, or --apply, the PostgreSQL grants of Serve's role.",
        discussion: """
            The role may read the tables Serve polls (serving_state, production_history, experiments, \
            duet_migrations) and insert events and exposures; the database refuses it everything else. \
            Point `duet serve --serve-registry` at a URL with this role.
            """
    )
    @OptionGroup var home: HomeOptions
    @Option(help: "Serve's role name.") var role: String = "duet_serve"
    @Option(help: "Set this login password for the role (default: $DUET_SERVE_PASSWORD; none keeps the current one).") var password: String?
    @Flag(help: "Create the role if needed and apply the grants, on --registry, as the Lab's user.") var apply = false

    func run() async throws {
        #if Postgres
        let secret = password ?? ProcessInfo.processInfo.environment["DUET_SERVE_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        let statements = try PostgresServeRole.statements(role: role, password: secret)
        guard apply else {
            for statement in statements { print(statement + ";") }
            return
        }
        guard let url = home.registryURL else { throw ValidationError("--apply needs --registry postgres://… (or $DUET_REGISTRY)") }
        let database = try await SharedPostgres.database(url)
        try await PostgresSchema.migrate(database)
        try await PostgresServeRole.apply(role: role, password: secret, on: database)
        print("role \(role) may read \(PostgresServeRole.readable.joined(separator: ", ")) and insert into \((PostgresServeRole.appendable + PostgresServeRole.keyed).joined(separator: ", ")) at \(database.redactedURL)")
        #else
        throw PostgresSupport.missing(for: home.registryURL ?? "postgres://")
        #endif
    }
}
