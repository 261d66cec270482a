public import DuetCore
import Foundation

/// One row as an importer reads it, before it goes to a snapshot or the event log.
public typealias ImportedRow = FeedbackEvent

/// Which header columns hold what, for generic CSV/TSV files.
public struct ColumnMapping: Sendable, Hashable {
    public var user: String
    public var item: String
    public var weight: String?
    public var time: String?
    public var kind: String?
    /// nil: tab for `.tsv`/`.tab` files, comma otherwise.
    public var delimiter: String?

    public init(user: String, item: String, weight: String? = nil, time: String? = nil, kind: String? = nil, delimiter: String? = nil) {
        self.user = user
        self.item = item
        self.weight = weight
        self.time = time
        self.kind = kind
        self.delimiter = delimiter
    }
}

public enum ImportSource: Sendable, Hashable {
    /// HetRec 2011 Last.fm: `user_artists.dat` (and `artists.dat` for names) in a folder.
    case lastfm(folder: String)
    /// MovieLens `u.data` (tab-separated) or `ratings.dat` (`::`-separated), no header.
    case movielens(file: String)
    case table(file: String, mapping: ColumnMapping)
    /// JSON Lines, one FeedbackEvent a line.
    case jsonl(file: String)
    /// A synthetic world folder from `duet world generate`.
    case world(folder: String)

    public var formatName: String {
        switch self {
        case .lastfm: "lastfm"
        case .movielens: "movielens"
        case .table: "csv"
        case .jsonl: "jsonl"
        case .world: "world"
        }
    }

    public var displayPath: String {
        switch self {
        case let .lastfm(path), let .movielens(path), let .table(path, _), let .jsonl(path), let .world(path): path
        }
    }
}

/// What an import read and what it skipped. Skipped rows are only possible with `--skip-bad-rows`.
public struct ReadTally: Sendable, Codable, Hashable {
    public var rowsRead = 0
    public var rowsSkipped = 0
    /// The first few problems, "file:line: reason", so a user can see what was skipped.
    public var skippedExamples: [String] = []

    public init() {}

    mutating func skip(_ error: DuetError) {
        rowsSkipped += 1
        if skippedExamples.count < 5 { skippedExamples.append(error.description) }
    }
}

/// Reads rows from a source. A malformed row stops the read with the file, the line and the
/// problem, unless `skipBadRows` is set, in which case it is counted and reported.
public struct Importer: Sendable {
    public let source: ImportSource
    public let skipBadRows: Bool

    public init(source: ImportSource, skipBadRows: Bool = false) {
        self.source = source
        self.skipBadRows = skipBadRows
    }

    /// Streams every good row to `body`. `progress` receives the bytes read so far.
    public func read(progress: ((Int) -> Void)? = nil, _ body: (ImportedRow) throws -> Void) throws -> ReadTally {
        var tally = ReadTally()
        switch source {
        case let .lastfm(folder):
            let file = (folder as NSString).appendingPathComponent("user_artists.dat")
            let layout = TableLayout(user: "userID", item: "artistID", weight: "weight", time: nil, kind: nil)
            try readTable(file: file, delimiter: "\t", quoting: false, header: .required(layout), tally: &tally, progress: progress, body)
        case let .movielens(file):
            let delimiter = try Self.sniffMovieLensDelimiter(file)
            try readTable(file: file, delimiter: delimiter, quoting: false, header: .none(columns: 4, user: 0, item: 1, weight: 2, time: 3),
                          defaultKind: "rating", tally: &tally, progress: progress, body)
        case let .table(file, mapping):
            let delimiter = mapping.delimiter ?? (file.hasSuffix(".tsv") || file.hasSuffix(".tab") ? "\t" : ",")
            let layout = TableLayout(user: mapping.user, item: mapping.item, weight: mapping.weight, time: mapping.time, kind: mapping.kind)
            try readTable(file: file, delimiter: delimiter, quoting: delimiter != "\t", header: .required(layout), tally: &tally, progress: progress, body)
        case let .world(folder):
            let file = (folder as NSString).appendingPathComponent(WorldFiles.events)
            let layout = TableLayout(user: "user", item: "item", weight: "weight", time: "timestamp", kind: "kind")
            try readTable(file: file, delimiter: "\t", quoting: false, header: .required(layout), tally: &tally, progress: progress, body)
        case let .jsonl(file):
            try readJSONLines(file: file, tally: &tally, progress: progress, body)
        }
        guard tally.rowsRead > 0 else {
            throw DuetError.emptyInput(path: source.displayPath, reason: "has no data rows")
        }
        guard tally.rowsRead > tally.rowsSkipped else {
            throw DuetError.emptyInput(path: source.displayPath, reason: "all \(tally.rowsRead) rows were bad; first: \(tally.skippedExamples.first ?? "")")
        }
        return tally
    }

    /// The items' names, when the source carries them.
    public func readCatalog() throws -> [CatalogItem]? {
        switch source {
        case let .lastfm(folder):
            let file = (folder as NSString).appendingPathComponent("artists.dat")
            guard FileManager.default.fileExists(atPath: file) else { return nil }
            var catalog: [CatalogItem] = []
            var fields: [String] = []
            let splitter = FieldSplitter(delimiter: "\t", quoting: false)
            try LineReader(path: file).forEachLine { line, number in
                guard number > 1, !line.isEmpty else { return }
                do { try splitter.split(line, into: &fields) } catch let error as FieldError {
                    throw DuetError.malformedRow(file: file, line: number, reason: error.reason)
                }
                guard fields.count >= 2, Identifier.problem(with: fields[0]) == nil else {
                    throw DuetError.malformedRow(file: file, line: number, reason: "expected 'id<TAB>name…', found \(fields.count) field(s)")
                }
                catalog.append(CatalogItem(id: fields[0], title: fields[1], artist: fields[1]))
            }
            return catalog
        case let .world(folder):
            return try WorldCatalog.read(from: URL(fileURLWithPath: folder).appendingPathComponent(WorldFiles.catalog))
        default:
            return nil
        }
    }

    // MARK: - Tables

    struct TableLayout {
        var user: String
        var item: String
        var weight: String?
        var time: String?
        var kind: String?
    }

    enum Header {
        case required(TableLayout)
        case none(columns: Int, user: Int, item: Int, weight: Int?, time: Int?)
    }

    struct ColumnIndexes {
        var count: Int
        var user: Int
        var item: Int
        var weight: Int?
        var time: Int?
        var kind: Int?
    }

    private func readTable(file: String, delimiter: String, quoting: Bool, header: Header, defaultKind: EventKind = .play,
                           tally: inout ReadTally, progress: ((Int) -> Void)?, _ body: (ImportedRow) throws -> Void) throws {
        let splitter = FieldSplitter(delimiter: delimiter, quoting: quoting)
        var fields: [String] = []
        var columns: ColumnIndexes?
        if case let .none(count, user, item, weight, time) = header {
            columns = ColumnIndexes(count: count, user: user, item: item, weight: weight, time: time, kind: nil)
        }
        var bytes = 0
        var localTally = tally
        defer { tally = localTally }
        try LineReader(path: file).forEachLine { line, number in
            bytes += line.count + 1
            if number & 0x3FFF == 0 { progress?(bytes) }
            if line.isEmpty || line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
            do {
                do { try splitter.split(line, into: &fields) } catch let error as FieldError {
                    throw DuetError.malformedRow(file: file, line: number, reason: error.reason)
                }
                guard let indexes = columns else {
                    guard case let .required(layout) = header else { return }
                    columns = try Self.resolve(layout, header: fields, file: file, line: number)
                    return
                }
                localTally.rowsRead += 1
                let row = try Self.parseRow(fields, indexes, defaultKind: defaultKind, file: file, line: number)
                try body(row)
            } catch let error as DuetError {
                guard skipBadRows, case .malformedRow = error, columns != nil else { throw error }
                localTally.skip(error)
            }
        }
        progress?(bytes)
        if columns == nil { throw DuetError.emptyInput(path: file, reason: "is empty (no header row)") }
    }

    private static func resolve(_ layout: TableLayout, header: [String], file: String, line: Int) throws -> ColumnIndexes {
        let names = header.map { $0.trimmingCharacters(in: .whitespaces) }
        func find(_ name: String?, _ role: String) throws -> Int? {
            guard let name else { return nil }
            guard let index = names.firstIndex(of: name) else {
                throw DuetError.malformedRow(file: file, line: line,
                                             reason: "the header has no \(role) column '\(name)' (columns: \(names.joined(separator: ", ")))")
            }
            return index
        }
        return ColumnIndexes(count: names.count, user: try find(layout.user, "user")!, item: try find(layout.item, "item")!,
                             weight: try find(layout.weight, "weight"), time: try find(layout.time, "time"),
                             kind: try find(layout.kind, "kind"))
    }

    private static func parseRow(_ fields: [String], _ columns: ColumnIndexes, defaultKind: EventKind,
                                 file: String, line: Int) throws -> ImportedRow {
        func bad(_ reason: String) -> DuetError { .malformedRow(file: file, line: line, reason: reason) }
        guard fields.count == columns.count else {
            throw bad("expected \(columns.count) fields, found \(fields.count)")
        }
        let user = fields[columns.user]
        let item = fields[columns.item]
        if let problem = Identifier.problem(with: user) { throw bad("user id \(problem)") }
        if let problem = Identifier.problem(with: item) { throw bad("item id \(problem)") }
        var weight: Float = 1
        if let index = columns.weight {
            let text = fields[index].trimmingCharacters(in: .whitespaces)
            guard let value = Float(text), value.isFinite else { throw bad("weight '\(text)' is not a number") }
            guard value >= 0 else { throw bad("weight \(text) is negative") }
            weight = value
        }
        var timestamp: EpochMillis = 0
        if let index = columns.time {
            guard let value = TimestampParser.epochMillis(Substring(fields[index])) else {
                throw bad("time '\(fields[index].prefix(40))' is not epoch seconds, epoch milliseconds or ISO 8601 from 1970 to 9999")
            }
            timestamp = value
        }
        var kind = defaultKind
        if let index = columns.kind {
            do { kind = try EventKind.validated(fields[index]) } catch { throw bad(error.description) }
        }
        return ImportedRow(user: user, item: item, kind: kind, weight: weight, timestamp: timestamp)
    }

    private static func sniffMovieLensDelimiter(_ file: String) throws -> String {
        guard FileManager.default.fileExists(atPath: file) else { throw DuetError.fileNotFound(path: file) }
        var delimiter = "\t"
        do {
            try LineReader(path: file).forEachLine { line, _ in
                if String(decoding: line, as: UTF8.self).contains("::") { delimiter = "::" }
                throw StopReading()
            }
        } catch is StopReading {}
        return delimiter
    }

    private struct StopReading: Error {}

    // MARK: - JSON Lines

    private func readJSONLines(file: String, tally: inout ReadTally, progress: ((Int) -> Void)?,
                               _ body: (ImportedRow) throws -> Void) throws {
        let decoder = JSONDecoder()
        var bytes = 0
        var localTally = tally
        defer { tally = localTally }
        try LineReader(path: file).forEachLine { line, number in
            bytes += line.count + 1
            if number & 0x3FFF == 0 { progress?(bytes) }
            if line.isEmpty || line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
            localTally.rowsRead += 1
            let event: FeedbackEvent
            do {
                event = try decoder.decode(FeedbackEvent.self, from: Data(line))
            } catch {
                let failure = DuetError.malformedRow(file: file, line: number, reason: Self.describe(error))
                guard skipBadRows else { throw failure }
                localTally.skip(failure)
                return
            }
            try body(event)
        }
        progress?(bytes)
    }

    static func describe(_ error: any Error) -> String { DecodingProblem.describe(error) }
}
