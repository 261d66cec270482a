#if Postgres
public import DuetCore
import Foundation
import PostgresNIO

/// The event log on PostgreSQL, for several Serve replicas: the same protocol and semantics as the
/// SQLite log. Events are partitioned by time (a default partition catches every range until an
/// operator adds monthly ones); appends are multi-row inserts (UNNEST of arrays) in one transaction,
/// and commit durably before returning. Update and delete are refused by triggers.
public final class PostgresEventLog: EventLog {
    let database: PostgresDatabase

    static let migrationName = "events-v1"
    static let batchesMigrationName = "events-v2-ingest-batches"
    static let shadowsMigrationName = "events-v3-shadow-exposures"

    /// The Lab's log: creates or migrates the schema.
    public init(database: PostgresDatabase) async throws {
        self.database = database
        try await Self.migrate(database)
    }

    /// Serve's sink: never migrates, and refuses to start on a schema it does not know.
    public init(servingDatabase database: PostgresDatabase) async throws {
        self.database = database
        try await PostgresSchema.requireCurrent(database)
    }

    static func migrate(_ database: PostgresDatabase) async throws {
        try await migrateEvents(database)
        // A retried batch is stored once: its key is written in the batch's own transaction.
        try await database.migrate(batchesMigrationName, [
            "CREATE TABLE ingest_batches (key TEXT PRIMARY KEY, last_seq BIGINT, accepted INTEGER NOT NULL, ts BIGINT NOT NULL)",
            "CREATE TRIGGER ingest_batches_append_only BEFORE UPDATE OR DELETE ON ingest_batches FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
        ])
        // Shadow lists live in their own table: nothing that reads exposures can count them as shown.
        try await database.migrate(shadowsMigrationName, [
            "CREATE TABLE shadow_exposures (seq BIGSERIAL PRIMARY KEY, shadow_id TEXT NOT NULL, request_id TEXT NOT NULL, ts BIGINT NOT NULL, record TEXT NOT NULL)",
            "CREATE INDEX shadow_exposures_shadow ON shadow_exposures(shadow_id, seq)",
            "CREATE TRIGGER shadow_exposures_append_only BEFORE UPDATE OR DELETE ON shadow_exposures FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
        ])
    }

    public func append(shadows: [ShadowExposure]) async throws {
        guard !shadows.isEmpty else { return }
        for shadow in shadows { try shadow.validate() }
        let ids = shadows.map(\.shadowID), requests = shadows.map(\.requestID), times = shadows.map(\.timestamp)
        let records = try shadows.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try await database.client.query("""
            INSERT INTO shadow_exposures (shadow_id, request_id, ts, record)
            SELECT * FROM UNNEST(\(ids)::text[], \(requests)::text[], \(times)::bigint[], \(records)::text[])
            """, logger: database.logger)
    }

    public func shadows(of shadowID: String, after sequence: Int64, limit: Int) async throws -> [(sequence: Int64, shadow: ShadowExposure)] {
        var out: [(sequence: Int64, shadow: ShadowExposure)] = []
        let rows = try await database.client.query("""
            SELECT seq, record FROM shadow_exposures WHERE shadow_id = \(shadowID) AND seq > \(sequence) ORDER BY seq LIMIT \(Int64(limit))
            """, logger: database.logger)
        for try await (seq, record) in rows.decode((Int64, String).self) {
            out.append((seq, try JSONDecoder().decode(ShadowExposure.self, from: Data(record.utf8))))
        }
        return out
    }

    private static func migrateEvents(_ database: PostgresDatabase) async throws {
        try await database.migrate(migrationName, [
            """
            CREATE OR REPLACE FUNCTION duet_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$ LANGUAGE plpgsql
            """,
            """
            CREATE TABLE events (
                seq BIGSERIAL NOT NULL,
                ts BIGINT NOT NULL,
                user_id TEXT NOT NULL,
                item TEXT NOT NULL,
                kind TEXT NOT NULL,
                weight REAL NOT NULL,
                request_id TEXT
            ) PARTITION BY RANGE (ts)
            """,
            "CREATE TABLE events_default PARTITION OF events DEFAULT",
            "CREATE INDEX events_seq ON events (seq)",
            "CREATE INDEX events_ts ON events (ts)",
            "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
            """
            CREATE TABLE exposures (
                seq BIGSERIAL PRIMARY KEY,
                request_id TEXT NOT NULL UNIQUE,
                ts BIGINT NOT NULL,
                user_id TEXT NOT NULL,
                bundle_id TEXT NOT NULL,
                items TEXT NOT NULL,
                experiments TEXT NOT NULL,
                fallback TEXT,
                context TEXT
            )
            """,
            "CREATE INDEX exposures_ts ON exposures (ts)",
            "CREATE TRIGGER exposures_append_only BEFORE UPDATE OR DELETE ON exposures FOR EACH ROW EXECUTE FUNCTION duet_append_only()",
        ])
    }

    @discardableResult
    public func append(events: [FeedbackEvent]) async throws -> Int64? {
        guard !events.isEmpty else { return nil }
        for event in events { try event.validate() }
        return try await database.transaction { connection in
            try await Self.insert(events, on: connection, logger: database.logger)
        }
    }

    public func append(events: [FeedbackEvent], batchKey: String) async throws -> BatchReceipt {
        try Identifier.validate(batchKey, field: "Idempotency-Key")
        for event in events { try event.validate() }
        return try await database.transaction { connection in
            let seen = try await connection.query("SELECT last_seq, accepted FROM ingest_batches WHERE key = \(batchKey)", logger: database.logger)
            for try await (last, accepted) in seen.decode((Int64?, Int32).self) {
                return BatchReceipt(lastSequence: last, accepted: Int(accepted), repeated: true)
            }
            let last = events.isEmpty ? nil : try await Self.insert(events, on: connection, logger: database.logger)
            // Two attempts racing with one key: the second fails on the key and commits nothing.
            try await connection.query("""
                INSERT INTO ingest_batches (key, last_seq, accepted, ts) VALUES (\(batchKey), \(last), \(Int32(events.count)), \(Date().epochMillis))
                """, logger: database.logger)
            return BatchReceipt(lastSequence: last, accepted: events.count, repeated: false)
        }
    }

    static func insert(_ events: [FeedbackEvent], on connection: PostgresConnection, logger: Logger) async throws -> Int64? {
        let times = events.map(\.timestamp), users = events.map(\.user), items = events.map(\.item)
        let kinds = events.map(\.kind.rawValue), weights = events.map { Double($0.weight) }
        let requests = events.map { $0.requestID ?? "" }
        let rows = try await connection.query("""
            WITH inserted AS (
                INSERT INTO events (ts, user_id, item, kind, weight, request_id)
                SELECT t, u, i, k, w, NULLIF(r, '') FROM UNNEST(\(times)::bigint[], \(users)::text[], \(items)::text[],
                                                            \(kinds)::text[], \(weights)::float8[], \(requests)::text[]) AS x(t, u, i, k, w, r)
                RETURNING seq)
            SELECT max(seq) FROM inserted
            """, logger: logger)
        for try await (last) in rows.decode(Int64?.self) { return last }
        return nil
    }

    @discardableResult
    public func append(exposures: [Exposure]) async throws -> Int64? {
        guard !exposures.isEmpty else { return nil }
        return try await insert(exposures, skippingKnown: false).last
    }

    public func replay(exposures: [Exposure]) async throws -> Int {
        guard !exposures.isEmpty else { return 0 }
        return try await insert(exposures, skippingKnown: true).inserted
    }

    private func insert(_ exposures: [Exposure], skippingKnown: Bool) async throws -> (last: Int64?, inserted: Int) {
        for exposure in exposures { try exposure.validate() }
        let requests = exposures.map(\.requestID), times = exposures.map(\.timestamp), users = exposures.map(\.user)
        let bundles = exposures.map(\.bundleID), items = exposures.map { SQLiteEventLog.itemsJSON($0.items) }
        let arms = exposures.map { SQLiteEventLog.armsJSON($0.experiments) }
        let fallbacks = exposures.map { $0.fallback ?? "" }, contexts = exposures.map { $0.context ?? "" }
        let conflict = skippingKnown ? "ON CONFLICT (request_id) DO NOTHING" : ""
        return try await database.transaction { connection in
            var query: PostgresQuery = """
                WITH inserted AS (
                    INSERT INTO exposures (request_id, ts, user_id, bundle_id, items, experiments, fallback, context)
                    SELECT r, t, u, b, i, e, NULLIF(f, ''), NULLIF(c, '') FROM UNNEST(\(requests)::text[], \(times)::bigint[], \(users)::text[],
                        \(bundles)::text[], \(items)::text[], \(arms)::text[], \(fallbacks)::text[], \(contexts)::text[]) AS x(r, t, u, b, i, e, f, c)
                    CONFLICT_CLAUSE
                    RETURNING seq)
                SELECT max(seq), count(*) FROM inserted
                """
            query.sql = query.sql.replacingOccurrences(of: "CONFLICT_CLAUSE", with: conflict)
            let rows = try await connection.query(query, logger: database.logger)
            for try await (last, count) in rows.decode((Int64?, Int64).self) { return (last, Int(count)) }
            return (nil, 0)
        }
    }

    /// Buffers the producer's events, then inserts them in chunks inside one transaction: all or nothing.
    public func appendAtomically(_ produce: (_ append: (FeedbackEvent) throws -> Void) throws -> Void) async throws -> Int {
        var buffered: [FeedbackEvent] = []
        try produce { event in
            try event.validate()
            buffered.append(event)
        }
        let all = buffered
        guard !all.isEmpty else { return 0 }
        try await database.transaction { connection in
            for start in stride(from: 0, to: all.count, by: 10_000) {
                _ = try await Self.insert(Array(all[start..<min(start + 10_000, all.count)]), on: connection, logger: database.logger)
            }
        }
        return all.count
    }

    func whereClause(_ query: inout DynamicQuery, after sequence: Int64, filter: EventFilter, kinds: Bool) throws {
        var conditions = ["seq > \(try query.bind(sequence))"]
        if let maxSequence = filter.maxSequence { conditions.append("seq <= \(try query.bind(maxSequence))") }
        if let from = filter.from { conditions.append("ts >= \(try query.bind(from))") }
        if let until = filter.until { conditions.append("ts < \(try query.bind(until))") }
        if kinds, let set = filter.kinds { conditions.append("kind = ANY(\(try query.bind(set.map(\.rawValue).sorted()))::text[])") }
        query.sql += " WHERE " + conditions.joined(separator: " AND ")
    }

    public func events(after sequence: Int64, matching filter: EventFilter, limit: Int) async throws -> [StoredEvent] {
        var query = DynamicQuery("SELECT seq, ts, user_id, item, kind, weight, request_id FROM events")
        try whereClause(&query, after: sequence, filter: filter, kinds: true)
        query.sql += " ORDER BY seq LIMIT \(limit)"
        var page: [StoredEvent] = []
        let rows = try await database.client.query(query.query, logger: database.logger)
        for try await (seq, ts, user, item, kind, weight, request) in rows.decode((Int64, Int64, String, String, String, Float, String?).self) {
            page.append(StoredEvent(sequence: seq, event: FeedbackEvent(user: user, item: item, kind: EventKind(rawValue: kind), weight: weight,
                                                                        timestamp: ts, requestID: request)))
        }
        return page
    }

    public func exposures(after sequence: Int64, matching filter: EventFilter, limit: Int) async throws -> [StoredExposure] {
        var query = DynamicQuery("SELECT seq, request_id, ts, user_id, bundle_id, items, experiments, fallback, context FROM exposures")
        try whereClause(&query, after: sequence, filter: filter, kinds: false)
        query.sql += " ORDER BY seq LIMIT \(limit)"
        let decoder = JSONDecoder()
        var page: [StoredExposure] = []
        let rows = try await database.client.query(query.query, logger: database.logger)
        for try await (seq, request, ts, user, bundle, items, arms, fallback, context)
            in rows.decode((Int64, String, Int64, String, String, String, String, String?, String?).self) {
            let exposure = Exposure(requestID: request, user: user, timestamp: ts, items: try decoder.decode([String].self, from: Data(items.utf8)),
                                    bundleID: bundle, experiments: try decoder.decode([ExperimentArmExposure].self, from: Data(arms.utf8)),
                                    fallback: fallback, context: context)
            page.append(StoredExposure(sequence: seq, exposure: exposure))
        }
        return page
    }

    public func highWaterMark() async throws -> (events: Int64, exposures: Int64) {
        let rows = try await database.client.query("SELECT COALESCE((SELECT max(seq) FROM events), 0), COALESCE((SELECT max(seq) FROM exposures), 0)",
                                                   logger: database.logger)
        for try await (events, exposures) in rows.decode((Int64, Int64).self) { return (events, exposures) }
        return (0, 0)
    }

    public func exposureSummary(from: EpochMillis, until: EpochMillis) async throws -> ExposureSummary {
        let rows = try await database.client.query("""
            SELECT count(*), count(fallback), count(*) FILTER (WHERE experiments LIKE '%"fallbackReason"%')
            FROM exposures WHERE ts >= \(from) AND ts < \(until)
            """, logger: database.logger)
        for try await (total, popularity, arms) in rows.decode((Int64, Int64, Int64).self) {
            return ExposureSummary(exposures: Int(total), popularityFallbacks: Int(popularity), armFallbacks: Int(arms))
        }
        return ExposureSummary(exposures: 0, popularityFallbacks: 0, armFallbacks: 0)
    }

    public func count(matching filter: EventFilter) async throws -> Int {
        var query = DynamicQuery("SELECT count(*) FROM events")
        try whereClause(&query, after: 0, filter: filter, kinds: true)
        let rows = try await database.client.query(query.query, logger: database.logger)
        for try await (count) in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}
#endif
