public import DuetCore
public import DuetStore
import Foundation

/// Where imported rows go.
public enum ImportDestination {
    /// A new content-hashed snapshot (the default).
    case snapshot(SnapshotStore)
    /// The event log, in one transaction.
    case eventLog(any EventLog)
}

public struct ImportReport: Codable, Sendable {
    public var source: String
    public var format: String
    public var tally: ReadTally
    /// Set for a snapshot destination.
    public var snapshot: SnapshotInfo?
    /// Set for an event log destination.
    public var eventsAppended: Int?
    public var catalogItems: Int?
    public var seconds: Double
}

public enum ImportPipeline {
    /// Reads the whole source, then publishes it at once: a malformed row means nothing is written.
    /// `kinds` limits which event kinds a snapshot folds in (default: all but skip and dislike).
    public static func run(_ importer: Importer, into destination: ImportDestination, kinds: Set<EventKind>? = nil,
                           progress: ((Int) -> Void)? = nil) async throws -> ImportReport {
        let started = Date()
        let catalog = try importer.readCatalog()
        switch destination {
        case let .snapshot(store):
            let builder = SnapshotBuilder()
            let tally = try importer.read(progress: progress) { row in
                if let kinds { guard kinds.contains(row.kind) else { return } } else if row.kind.isNegative { return }
                builder.add(user: row.user, item: row.item, weight: row.weight, timestamp: row.timestamp)
            }
            guard builder.rowCount > 0 else {
                throw DuetError.emptyInput(path: importer.source.displayPath, reason: "no rows of the kinds a snapshot keeps (\(kinds.map { $0.map(\.rawValue).sorted().joined(separator: ",") } ?? "all but skip and dislike"))")
            }
            let info = try store.freeze(builder, source: importer.source.displayPath, format: importer.source.formatName,
                                        kinds: kinds, tally: tally, catalog: catalog)
            return ImportReport(source: importer.source.displayPath, format: importer.source.formatName, tally: tally,
                                snapshot: info, eventsAppended: nil, catalogItems: catalog?.count,
                                seconds: Date().timeIntervalSince(started))
        case let .eventLog(log):
            var tally = ReadTally()
            let appended = try await log.appendAtomically { append in
                tally = try importer.read(progress: progress) { row in try append(row) }
            }
            return ImportReport(source: importer.source.displayPath, format: importer.source.formatName, tally: tally,
                                snapshot: nil, eventsAppended: appended, catalogItems: catalog?.count,
                                seconds: Date().timeIntervalSince(started))
        }
    }

    /// Freezes events from the log into a snapshot. The log is read up to its high-water mark at
    /// the start, so events appended meanwhile never leak in: the same call gives the same snapshot.
    public static func snapshotFromEventLog(_ log: any EventLog, store: SnapshotStore, from: EpochMillis?, until: EpochMillis?,
                                            kinds: Set<EventKind>?, catalog: [CatalogItem]?,
                                            progress: ((Int) -> Void)? = nil) async throws -> SnapshotInfo {
        let mark = try await log.highWaterMark()
        let filter = EventFilter(from: from, until: until, kinds: kinds, maxSequence: mark.events)
        let builder = SnapshotBuilder()
        var tally = ReadTally()
        try await log.forEachEvent(matching: filter) { page in
            for stored in page where kinds != nil || !stored.event.kind.isNegative {
                let event = stored.event
                builder.add(user: event.user, item: event.item, weight: event.weight, timestamp: event.timestamp)
            }
            tally.rowsRead += page.count
            progress?(tally.rowsRead)
        }
        guard builder.rowCount > 0 else {
            throw DuetError.emptyInput(path: "event log", reason: "no events match (up to sequence \(mark.events))")
        }
        var range = ""
        if let from { range += " from \(TimestampParser.iso8601String(from))" }
        if let until { range += " until \(TimestampParser.iso8601String(until))" }
        return try store.freeze(builder, source: "event log up to #\(mark.events)\(range)", format: "events",
                                kinds: kinds, tally: tally, catalog: catalog)
    }
}
