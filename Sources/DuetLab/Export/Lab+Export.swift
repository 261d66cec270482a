public import DuetCore
public import DuetStore
public import Foundation

/// One file an export wrote.
public struct ExportedFile: Codable, Sendable, Hashable {
    public var path: String
    public var bytes: Int
    public var contents: String
}

/// The formats an event export writes; both import back with `duet import csv|jsonl`.
public enum EventExportFormat: String, CaseIterable, Sendable {
    case csv, jsonl
}

/// Everything leaves the Lab as files numpy, scipy and pandas read directly. Each file is written
/// under a temporary name and renamed into place, so a failed export leaves nothing half-written,
/// and each streams, so memory does not grow with the data.
extension Lab {
    /// A factor bundle's user and item factors as `.npy` (rows × dimension, float32), its popularity
    /// as `.npy`, and the ids of the rows as text, one per line.
    public func exportFactors(_ reference: String, to folder: URL) async throws -> [ExportedFile] {
        let bundle = try await openBundle(reference)
        guard bundle.dimension > 0 else {
            throw DuetError.refused("bundle \(bundle.id.prefix(12)) is a \(bundle.manifest.modelKind) model with no factors; export its snapshot instead")
        }
        try Self.prepareExportFolder(folder)
        let d = bundle.dimension
        var files: [ExportedFile] = []
        for (name, buffer, rows, what) in [("user_factors", bundle.userFactors, bundle.userCount, "users"),
                                           ("item_factors", bundle.itemFactors, bundle.itemCount, "items")] {
            let path = folder.appendingPathComponent("\(name).npy")
            try NumpyFormat.write(to: path, descr: "<f4", shape: [rows, d]) { write in try write(UnsafeRawBufferPointer(buffer)) }
            files.append(try Self.exported(path, "\(rows) \(what) × \(d) float32 factors"))
        }
        let popularity = folder.appendingPathComponent("popularity.npy")
        try NumpyFormat.write(to: popularity, descr: "<f4", shape: [bundle.itemCount]) { write in try write(UnsafeRawBufferPointer(bundle.popularity)) }
        files.append(try Self.exported(popularity, "\(bundle.itemCount) item popularity scores"))
        files.append(try Self.writeIDs(bundle.userIDs, to: folder.appendingPathComponent("users.txt"), what: "user ids, row order of user_factors"))
        files.append(try Self.writeIDs(bundle.itemIDs, to: folder.appendingPathComponent("items.txt"), what: "item ids, row order of item_factors"))
        return files
    }

    /// A snapshot as a CSR matrix (users × items, summed weights) that `scipy.sparse.load_npz` opens,
    /// with its ids; given a split, one matrix per part (`train.npz`, `test.npz`, `validation.npz`).
    public func exportSnapshot(_ reference: String?, split splitID: String?, to folder: URL) throws -> [ExportedFile] {
        let snapshot: Snapshot
        var parts: [(name: String, keep: (Int) -> Bool)]
        if let splitID {
            let (_, splitSnapshot, split) = try loadSplit(splitID)
            if let reference, try snapshots.resolve(reference).path != splitSnapshot.file.path {
                throw DuetError.invalidValue(field: "snapshot", reason: "split \(splitID) belongs to snapshot \(splitSnapshot.hash.prefix(12)), not \(reference)")
            }
            snapshot = splitSnapshot
            parts = []
            for part in [SplitPart.train, .test, .validation] where part == .train || part == .test || split.count(part) > 0 {
                let value = part.rawValue
                parts.append(("\(part)", { split.parts[$0] == value }))
            }
        } else {
            snapshot = try snapshots.open(reference ?? "latest")
            parts = [("interactions", { _ in true })]
        }
        try Self.prepareExportFolder(folder)
        var files: [ExportedFile] = []
        for (name, keep) in parts {
            var indptr = [Int64](repeating: 0, count: snapshot.userCount + 1)
            for user in 0..<snapshot.userCount {
                var count: Int64 = 0
                for entry in snapshot.row(user) where keep(entry) { count += 1 }
                indptr[user + 1] = indptr[user] + count
            }
            let path = folder.appendingPathComponent("\(name).npz")
            try NumpyArchive.writeCSR(to: path, rows: snapshot.userCount, columns: snapshot.itemCount, nonZeros: Int(indptr.last!),
                                      indptr: indptr) { emit in
                for user in 0..<snapshot.userCount {
                    for entry in snapshot.row(user) where keep(entry) { try emit(Int32(snapshot.items[entry]), snapshot.weights[entry]) }
                }
            }
            files.append(try Self.exported(path, "\(snapshot.userCount) × \(snapshot.itemCount) CSR, \(indptr.last!) interactions (\(name))"))
        }
        files.append(try Self.writeIDs((0..<snapshot.userCount).lazy.map { snapshot.userID($0) },
                                       to: folder.appendingPathComponent("users.txt"), what: "user ids, row order"))
        files.append(try Self.writeIDs((0..<snapshot.itemCount).lazy.map { snapshot.itemID($0) },
                                       to: folder.appendingPathComponent("items.txt"), what: "item ids, column order"))
        return files
    }

    /// One CSV row per evaluated user: the candidate's and the baseline's metrics side by side, as
    /// `lab evaluate` computes them. Precision here is per user (hits / min(k, test items)); the
    /// evaluation's precision pools hits over users, as implicit does.
    public func exportEvaluation(candidate: String, baseline: String, k: Int, to file: URL) async throws -> ExportedFile {
        let (comparison, perUser) = try await compareOffline(candidate: candidate, baseline: baseline, k: k, resamples: 0)
        let metrics = ["hits", "precision", "map", "ndcg", "auc", "recall", "mrr"]
        func values(_ m: PerUserMetrics, _ row: Int) -> [Double] {
            [m.hits[row], m.hits[row] / max(m.precisionDenominator[row], 1), m.ap[row], m.ndcg[row], m.auc[row], m.recall[row], m.reciprocalRank[row]]
        }
        let header = ["user", "test_items"] + metrics.map { "candidate_\($0)" } + metrics.map { "baseline_\($0)" }
        let path = try Self.writeCSV(to: file, header: header) { emit in
            for row in perUser.userIDs.indices {
                try emit([perUser.userIDs[row], "\(perUser.testItems[row])"]
                         + values(perUser.candidate, row).map { "\($0)" } + values(perUser.baseline, row).map { "\($0)" })
            }
        }
        return try Self.exported(path, "\(perUser.userIDs.count) users: \(comparison.candidate.prefix(12)) vs \(comparison.baseline.prefix(12)) at k=\(k)")
    }

    /// One CSV row per user exposed in an experiment's phase: the arm, and the tallies the analysis
    /// reads (with the pre-period ones CUPED uses).
    public func exportExperiment(_ id: String, phase requested: Int?, attributionHours: Double = 24, cupedDays: Int = 14,
                                 eventLog: any EventLog, to file: URL) async throws -> ExportedFile {
        try Identifier.validateFileSafe(id, field: "experiment id")
        let (record, phase, phases) = try await startedPhase(of: id, requested)
        let data = try await experimentData(record: record, phase: phase, phases: phases, incidents: try await registry.incidents(),
                                            excludeIncidents: true, attributionHours: attributionHours, cupedDays: cupedDays, eventLog: eventLog)
        let header = ["user", "arm", "exposures", "fallback_exposures", "plays", "skips", "saves", "listening",
                      "pre_plays", "pre_skips", "pre_saves", "pre_listening"]
        let users = data.users.keys.sorted()
        let path = try Self.writeCSV(to: file, header: header) { emit in
            for user in users {
                let t = data.users[user]!
                try emit([user, t.arm, "\(t.exposures)", "\(t.fallbackExposures)"]
                         + [t.plays, t.skips, t.saves, t.listening, t.prePlays, t.preSkips, t.preSaves, t.preListening].map { "\($0)" })
            }
        }
        return try Self.exported(path, "\(users.count) users of '\(id)' phase \(phase.phase), \(Set(data.users.values.map(\.arm)).count) arm(s)")
    }

    /// Events in [from, until) as CSV or JSON lines, oldest first, read page by page. Times are
    /// ISO 8601 UTC with milliseconds: a bare number before 2001 would import back as seconds.
    public static func exportEvents(from log: any EventLog, filter: EventFilter, format: EventExportFormat, to file: URL) async throws -> ExportedFile {
        let folder = file.deletingLastPathComponent()
        try prepareExportFolder(folder)
        let writer = try AtomicFileWriter(folder: folder)
        var count = 0
        do {
            if format == .csv { try writer.write(Array((CSV.line(["user", "item", "kind", "weight", "timestamp", "request_id", "sequence"]) + "\n").utf8)) }
            try await log.forEachEvent(matching: filter) { page in
                var lines: [UInt8] = []
                lines.reserveCapacity(page.count * 128)
                for stored in page {
                    let e = stored.event
                    switch format {
                    case .csv:
                        lines += (CSV.line([e.user, e.item, e.kind.rawValue, "\(e.weight)", TimestampParser.iso8601String(e.timestamp), e.requestID ?? "", "\(stored.sequence)"]) + "\n").utf8
                    case .jsonl:
                        // One writer per line: JSON lines are separate documents, not one array.
                        var json = JSONWriter(capacity: 160)
                        json.beginObject()
                        json.key("user"); json.string(e.user)
                        json.key("item"); json.string(e.item)
                        json.key("kind"); json.string(e.kind.rawValue)
                        json.key("weight"); json.number(e.weight)
                        json.key("timestamp"); json.string(TimestampParser.iso8601String(e.timestamp))
                        if let request = e.requestID { json.key("request_id"); json.string(request) }
                        json.key("sequence"); json.int(Int(stored.sequence))
                        json.endObject()
                        lines += json.bytes
                        lines.append(UInt8(ascii: "\n"))
                    }
                }
                count += page.count
                try writer.write(lines)
            }
            try writer.commit(to: file)
        } catch {
            writer.discard()
            throw error
        }
        return try exported(file, "\(count) events as \(format.rawValue)")
    }

    static func prepareExportFolder(_ folder: URL) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw DuetError.invalidValue(field: "out", reason: "\(folder.path) is a file, not a folder")
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    static func exported(_ path: URL, _ contents: String) throws -> ExportedFile {
        let size = (try FileManager.default.attributesOfItem(atPath: path.path)[.size] as? Int) ?? 0
        return ExportedFile(path: path.path, bytes: size, contents: contents)
    }

    static func writeIDs<S: Sequence<String>>(_ ids: S, to path: URL, what: String) throws -> ExportedFile {
        var count = 0
        try NumpyFormat.atomically(path) { writer in
            for id in ids {
                // Ids never hold control characters (Identifier refuses them), so a line is an id.
                guard Identifier.problem(with: id) == nil else { throw DuetError.refused("id '\(id.prefix(40))' cannot be written one per line") }
                try writer.write(Array((id + "\n").utf8))
                count += 1
            }
        }
        return try exported(path, "\(count) \(what)")
    }

    static func writeCSV(to file: URL, header: [String], _ rows: (_ emit: ([String]) throws -> Void) throws -> Void) throws -> URL {
        try prepareExportFolder(file.deletingLastPathComponent())
        try NumpyFormat.atomically(file) { writer in
            try writer.write(Array((CSV.line(header) + "\n").utf8))
            try rows { fields in try writer.write(Array((CSV.line(fields) + "\n").utf8)) }
        }
        return file
    }
}

/// RFC 4180 fields: quoted only when they hold a comma, a quote or a line break.
enum CSV {
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func line(_ fields: [String]) -> String { fields.map(field).joined(separator: ",") }
}
