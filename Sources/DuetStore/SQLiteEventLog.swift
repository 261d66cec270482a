public import DuetCore
import Foundation
import GRDB
import GRDBSQLite

/// The embedded event log: one SQLite file in WAL mode with `synchronous = FULL`, so a
/// committed batch survives a crash or power loss. Update and delete are refused by triggers.
public final class SQLiteEventLog: EventLog {
    private let pool: DatabasePool
    public let path: String

    /// `busyTimeout` bounds how long an append waits for another writer (a Lab import, say) before
    /// it fails without committing; Serve keeps it under its ingest deadline.
    public init(path: String, busyTimeout: Duration = .seconds(10)) throws {
        self.path = path
        pool = try SQLiteFiles.openForWriting(path: path, migrator: Self.migrator, what: "event log", busyTimeout: busyTimeout)
    }

    /// The writer's `PRAGMA synchronous`; 2 (FULL) syncs the WAL before a commit returns.
    package func writerSynchronousLevel() async throws -> Int { try await SQLiteFiles.synchronousLevel(pool) }

    /// Runs `sql` on this log's own connection, past every Swift-level guard: the tests use it to
    /// prove that the database's triggers refuse updates and deletes.
    package func executeOnConnection(_ sql: String) async throws {
        try await pool.write { db in try db.execute(sql: sql) }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-events-and-exposures") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    ts INTEGER NOT NULL,
                    user TEXT NOT NULL,
                    item TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    weight REAL NOT NULL,
                    request_id TEXT
                );
                CREATE INDEX events_ts ON events(ts);
                CREATE INDEX events_request ON events(request_id) WHERE request_id IS NOT NULL;
                CREATE TRIGGER events_no_update BEFORE UPDATE ON events
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                CREATE TRIGGER events_no_delete BEFORE DELETE ON events
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;

                CREATE TABLE exposures (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    request_id TEXT NOT NULL UNIQUE,
                    ts INTEGER NOT NULL,
                    user TEXT NOT NULL,
                    bundle_id TEXT NOT NULL,
                    items TEXT NOT NULL,
                    experiments TEXT NOT NULL,
                    fallback TEXT,
                    context TEXT
                );
                CREATE INDEX exposures_ts ON exposures(ts);
                CREATE TRIGGER exposures_no_update BEFORE UPDATE ON exposures
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                CREATE TRIGGER exposures_no_delete BEFORE DELETE ON exposures
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                """)
        }
        // A retried batch is stored once: its key is written in the batch's own transaction.
        migrator.registerMigration("v2-ingest-batches") { db in
            try db.execute(sql: """
                CREATE TABLE ingest_batches (
                    key TEXT PRIMARY KEY,
                    last_seq INTEGER,
                    accepted INTEGER NOT NULL,
                    ts INTEGER NOT NULL
                );
                CREATE TRIGGER ingest_batches_no_update BEFORE UPDATE ON ingest_batches
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                CREATE TRIGGER ingest_batches_no_delete BEFORE DELETE ON ingest_batches
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                """)
        }
        // Shadow lists live in their own table: nothing that reads exposures can count them as shown.
        migrator.registerMigration("v3-shadow-exposures") { db in
            try db.execute(sql: """
                CREATE TABLE shadow_exposures (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    shadow_id TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    record TEXT NOT NULL
                );
                CREATE INDEX shadow_exposures_shadow ON shadow_exposures(shadow_id, seq);
                CREATE TRIGGER shadow_exposures_no_update BEFORE UPDATE ON shadow_exposures
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                CREATE TRIGGER shadow_exposures_no_delete BEFORE DELETE ON shadow_exposures
                    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
                """)
        }
        return migrator
    }

    @discardableResult
    public func append(events: [FeedbackEvent]) async throws -> Int64? {
        guard !events.isEmpty else { return nil }
        for event in events { try event.validate() }
        return try await pool.write { db in try Self.insert(events, in: db) }
    }

    public func append(events: [FeedbackEvent], batchKey: String) async throws -> BatchReceipt {
        try Identifier.validate(batchKey, field: "Idempotency-Key")
        for event in events { try event.validate() }
        return try await pool.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT last_seq, accepted FROM ingest_batches WHERE key = ?", arguments: [batchKey]) {
                return BatchReceipt(lastSequence: row["last_seq"], accepted: row["accepted"], repeated: true)
            }
            let last = try Self.insert(events, in: db)
            try db.execute(sql: "INSERT INTO ingest_batches (key, last_seq, accepted, ts) VALUES (?, ?, ?, ?)",
                           arguments: [batchKey, last, events.count, Date().epochMillis])
            return BatchReceipt(lastSequence: last, accepted: events.count, repeated: false)
        }
    }

    public func appendAtomically(_ produce: (_ append: (FeedbackEvent) throws -> Void) throws -> Void) async throws -> Int {
        try appendInOneTransaction(produce)
    }

    /// Synchronous on purpose: the producer streams a file inside the write transaction.
    private func appendInOneTransaction(_ produce: (_ append: (FeedbackEvent) throws -> Void) throws -> Void) throws -> Int {
        try pool.write { db in
            let statement = try db.cachedStatement(sql: Self.insertEvent)
            var count = 0
            try produce { event in
                try event.validate()
                try statement.execute(arguments: Self.arguments(event))
                count += 1
            }
            return count
        }
    }

    static let insertEvent = "INSERT INTO events (ts, user, item, kind, weight, request_id) VALUES (?, ?, ?, ?, ?, ?)"

    static func arguments(_ event: FeedbackEvent) -> StatementArguments {
        [event.timestamp, event.user, event.item, event.kind.rawValue, Double(event.weight), event.requestID]
    }

    /// Inserts validated events inside the caller's transaction; returns the last sequence, or nil for none.
    static func insert(_ events: [FeedbackEvent], in db: Database) throws -> Int64? {
        guard !events.isEmpty else { return nil }
        let statement = try db.cachedStatement(sql: insertEvent)
        for event in events { try statement.execute(arguments: arguments(event)) }
        return db.lastInsertedRowID
    }

    @discardableResult
    public func append(exposures: [Exposure]) async throws -> Int64? {
        guard !exposures.isEmpty else { return nil }
        return try await insert(exposures, skippingKnown: false).last
    }

    public func append(shadows: [ShadowExposure]) async throws {
        guard !shadows.isEmpty else { return }
        for shadow in shadows { try shadow.validate() }
        let rows = try shadows.map { ($0, String(decoding: try JSONEncoder().encode($0), as: UTF8.self)) }
        try await pool.write { db in
            let statement = try db.cachedStatement(sql: "INSERT INTO shadow_exposures (shadow_id, request_id, ts, record) VALUES (?, ?, ?, ?)")
            for (shadow, record) in rows { try statement.execute(arguments: [shadow.shadowID, shadow.requestID, shadow.timestamp, record]) }
        }
    }

    public func shadows(of shadowID: String, after sequence: Int64, limit: Int) async throws -> [(sequence: Int64, shadow: ShadowExposure)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT seq, record FROM shadow_exposures WHERE shadow_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                             arguments: [shadowID, sequence, limit]).map { row in
                (row["seq"], try JSONDecoder().decode(ShadowExposure.self, from: Data((row["record"] as String).utf8)))
            }
        }
    }

    public func replay(exposures: [Exposure]) async throws -> Int {
        guard !exposures.isEmpty else { return 0 }
        return try await insert(exposures, skippingKnown: true).inserted
    }

    private func insert(_ exposures: [Exposure], skippingKnown: Bool) async throws -> (last: Int64?, inserted: Int) {
        for exposure in exposures { try exposure.validate() }
        let rows = exposures.map { exposure in (exposure, Self.itemsJSON(exposure.items), Self.armsJSON(exposure.experiments)) }
        return try await pool.write { db in
            let statement = try db.cachedStatement(sql: """
                INSERT \(skippingKnown ? "OR IGNORE " : "")INTO exposures (request_id, ts, user, bundle_id, items, experiments, fallback, context)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            // Bound through SQLite's C API: GRDB's StatementArguments box every value, which cost
            // Serve's writer more than the insert itself at tens of thousands of rows a second.
            let handle = statement.sqliteStatement
            defer {
                sqlite3_reset(handle)
                sqlite3_clear_bindings(handle)
            }
            var inserted = 0
            for (exposure, items, experiments) in rows {
                sqlite3_reset(handle)
                Self.bind(exposure.requestID, at: 1, in: handle)
                sqlite3_bind_int64(handle, 2, exposure.timestamp)
                Self.bind(exposure.user, at: 3, in: handle)
                Self.bind(exposure.bundleID, at: 4, in: handle)
                Self.bind(items, at: 5, in: handle)
                Self.bind(experiments, at: 6, in: handle)
                Self.bind(exposure.fallback, at: 7, in: handle)
                Self.bind(exposure.context, at: 8, in: handle)
                let code = sqlite3_step(handle)
                guard code == SQLITE_DONE else {
                    throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
                                        sql: statement.sql)
                }
                inserted += Int(sqlite3_changes(db.sqliteConnection))
            }
            return (db.lastInsertedRowID, inserted)
        }
    }

    /// SQLITE_TRANSIENT: SQLite copies the bytes before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    private static func bind(_ text: String?, at index: Int32, in handle: OpaquePointer) {
        guard var text else {
            sqlite3_bind_null(handle, index)
            return
        }
        text.withUTF8 { bytes in
            _ = bytes.withMemoryRebound(to: CChar.self) { chars in
                // A nil pointer would bind NULL, not the empty string.
                guard let start = chars.baseAddress else { return sqlite3_bind_text(handle, index, "", 0, transient) }
                return sqlite3_bind_text(handle, index, start, Int32(chars.count), transient)
            }
        }
    }

    /// Written by hand: exposures are appended for every request Serve answers.
    static func itemsJSON(_ items: [String]) -> String {
        var json = JSONWriter(capacity: items.count * 12 + 2)
        json.beginArray()
        for item in items { json.string(item) }
        json.endArray()
        return String(decoding: json.bytes, as: UTF8.self)
    }

    static func armsJSON(_ arms: [ExperimentArmExposure]) -> String {
        var json = JSONWriter(capacity: 64)
        json.beginArray()
        for arm in arms {
            json.beginObject()
            json.key("assigned"); json.string(arm.assigned)
            json.key("experimentId"); json.string(arm.experimentID)
            if let reason = arm.fallbackReason { json.key("fallbackReason"); json.string(reason) }
            json.key("phase"); json.int(arm.phase)
            json.key("served"); json.string(arm.served)
            json.endObject()
        }
        json.endArray()
        return String(decoding: json.bytes, as: UTF8.self)
    }

    public func events(after sequence: Int64, matching filter: EventFilter, limit: Int) async throws -> [StoredEvent] {
        let (clause, arguments) = Self.whereClause(after: sequence, filter: filter)
        return try await pool.read { db in
            let rows = try Row.fetchCursor(db, sql: """
                SELECT seq, ts, user, item, kind, weight, request_id FROM events \(clause) ORDER BY seq LIMIT \(limit)
                """, arguments: arguments)
            var page: [StoredEvent] = []
            while let row = try rows.next() {
                let event = FeedbackEvent(user: row[2], item: row[3], kind: EventKind(rawValue: row[4]),
                                          weight: Float(row[5] as Double), timestamp: row[1], requestID: row[6])
                page.append(StoredEvent(sequence: row[0], event: event))
            }
            return page
        }
    }

    public func exposures(after sequence: Int64, matching filter: EventFilter, limit: Int) async throws -> [StoredExposure] {
        var exposureFilter = filter
        exposureFilter.kinds = nil
        let (clause, arguments) = Self.whereClause(after: sequence, filter: exposureFilter)
        return try await pool.read { db in
            let decoder = JSONDecoder()
            let rows = try Row.fetchCursor(db, sql: """
                SELECT seq, request_id, ts, user, bundle_id, items, experiments, fallback, context
                FROM exposures \(clause) ORDER BY seq LIMIT \(limit)
                """, arguments: arguments)
            var page: [StoredExposure] = []
            while let row = try rows.next() {
                let items = try decoder.decode([String].self, from: Data((row[5] as String).utf8))
                let arms = try decoder.decode([ExperimentArmExposure].self, from: Data((row[6] as String).utf8))
                let exposure = Exposure(requestID: row[1], user: row[3], timestamp: row[2], items: items, bundleID: row[4],
                                        experiments: arms, fallback: row[7], context: row[8])
                page.append(StoredExposure(sequence: row[0], exposure: exposure))
            }
            return page
        }
    }

    public func highWaterMark() async throws -> (events: Int64, exposures: Int64) {
        try await pool.read { db in
            let events = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM events") ?? 0
            let exposures = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM exposures") ?? 0
            return (events, exposures)
        }
    }

    public func exposureSummary(from: EpochMillis, until: EpochMillis) async throws -> ExposureSummary {
        try await pool.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS total, COUNT(fallback) AS popularity,
                       COALESCE(SUM(experiments LIKE '%"fallbackReason"%'), 0) AS arms
                FROM exposures WHERE ts >= ? AND ts < ?
                """, arguments: [from, until])
            return ExposureSummary(exposures: row?["total"] ?? 0, popularityFallbacks: row?["popularity"] ?? 0, armFallbacks: row?["arms"] ?? 0)
        }
    }

    public func count(matching filter: EventFilter) async throws -> Int {
        let (clause, arguments) = Self.whereClause(after: 0, filter: filter)
        return try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events \(clause)", arguments: arguments) ?? 0
        }
    }

    private static func whereClause(after sequence: Int64, filter: EventFilter) -> (String, StatementArguments) {
        var conditions = ["seq > ?"]
        var arguments: StatementArguments = [sequence]
        if let maxSequence = filter.maxSequence {
            conditions.append("seq <= ?")
            arguments += [maxSequence]
        }
        if let from = filter.from {
            conditions.append("ts >= ?")
            arguments += [from]
        }
        if let until = filter.until {
            conditions.append("ts < ?")
            arguments += [until]
        }
        if let kinds = filter.kinds {
            let sorted = kinds.map(\.rawValue).sorted()
            conditions.append("kind IN (\(sorted.map { _ in "?" }.joined(separator: ",")))")
            arguments += StatementArguments(sorted)
        }
        return ("WHERE " + conditions.joined(separator: " AND "), arguments)
    }
}
