import DuetCore
import GRDB

/// How Duet opens its SQLite files: WAL (a pool), a busy timeout for the CLI and the server sharing
/// a file, foreign keys on, and `synchronous = FULL` so a committed transaction survives power loss.
enum SQLiteFiles {
    static func configuration(readOnly: Bool, busyTimeout: Duration = .seconds(10)) -> Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(Double(busyTimeout.components.seconds) + Double(busyTimeout.components.attoseconds) / 1e18)
        configuration.readonly = readOnly
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA synchronous = FULL") }
            // The writer gets 64 MiB of page cache (the default is 2): appends touch index pages all
            // over a large log. Readers, up to five in a pool, get 8 MiB each: at 64 MiB apiece a
            // following reader (Serve's tail of the log) held hundreds of MiB under an ingest flood.
            try db.execute(sql: db.configuration.readonly ? "PRAGMA cache_size = -8192" : "PRAGMA cache_size = -65536")
        }
        return configuration
    }

    /// Opens `path` for writing and brings its schema up to date; `what` names it in errors.
    static func openForWriting(path: String, migrator: DatabaseMigrator, what: String,
                               busyTimeout: Duration = .seconds(10)) throws -> DatabasePool {
        do {
            let pool = try DatabasePool(path: path, configuration: configuration(readOnly: false, busyTimeout: busyTimeout))
            // GRDB's pool switches its writer to WAL and then to `synchronous = NORMAL`, after
            // `prepareDatabase` ran: a commit would then reach the disk only at the next checkpoint.
            // The pool keeps one writer connection for its life, so setting FULL once here holds.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            try migrator.migrate(pool)
            return pool
        } catch {
            throw DuetError.io(path: path, reason: "cannot open the \(what): \(error)")
        }
    }

    /// The writer connection's `PRAGMA synchronous` (2 is FULL): what a commit waits for.
    static func synchronousLevel(_ writer: any DatabaseWriter) async throws -> Int {
        try await writer.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }
}
