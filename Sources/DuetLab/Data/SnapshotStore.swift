public import DuetCore
public import Foundation

/// What is known about a snapshot besides its bytes. Kept beside the snapshot as `<hash>.json`;
/// it is not part of the hash, so re-importing the same data keeps the first record.
public struct SnapshotInfo: Codable, Sendable, Hashable {
    public var hash: String
    public var source: String
    public var format: String
    public var createdAt: EpochMillis
    public var users: Int
    public var items: Int
    public var interactions: Int
    public var firstEvent: EpochMillis?
    public var lastEvent: EpochMillis?
    /// Event kinds folded into the weights; nil means every kind but the negative ones.
    public var kinds: [String]?
    public var rowsRead: Int
    public var rowsSkipped: Int
    public var bytes: Int
    public var hasCatalog: Bool
}

extension SnapshotInfo {
    /// What the file alone says, for a snapshot found outside a home's records.
    public init(unrecorded snapshot: Snapshot) {
        self.init(hash: snapshot.hash, source: snapshot.file.path, format: "unknown", createdAt: 0, users: snapshot.userCount,
                  items: snapshot.itemCount, interactions: snapshot.interactionCount, firstEvent: snapshot.timeRange?.lowerBound,
                  lastEvent: snapshot.timeRange?.upperBound, kinds: nil, rowsRead: 0, rowsSkipped: 0, bytes: snapshot.file.size,
                  hasCatalog: false)
    }
}

/// The snapshots of a Duet home: `<hash>.dsnap`, its `<hash>.json` record and an optional
/// `<hash>.catalog.jsonl` with item names.
public struct SnapshotStore: Sendable {
    public let folder: URL

    public init(home: DuetHome) { folder = home.snapshotsFolder }

    public func path(of hash: String) -> URL { folder.appendingPathComponent("\(hash).\(Snapshot.fileExtension)") }
    func infoPath(of hash: String) -> URL { folder.appendingPathComponent("\(hash).json") }
    func catalogPath(of hash: String) -> URL { folder.appendingPathComponent("\(hash).catalog.jsonl") }

    /// Freezes `builder` into a snapshot and records where it came from.
    public func freeze(_ builder: SnapshotBuilder, source: String, format: String, kinds: Set<EventKind>?,
                       tally: ReadTally, catalog: [CatalogItem]?) throws -> SnapshotInfo {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let hash = try builder.write(into: folder)
        let snapshot = try Snapshot(path: path(of: hash).path)
        if let catalog, !FileManager.default.fileExists(atPath: catalogPath(of: hash).path) {
            try Self.writeCatalog(catalog, to: catalogPath(of: hash))
        }
        if let existing = try? info(hash) { return existing }
        let info = SnapshotInfo(hash: hash, source: source, format: format, createdAt: Date().epochMillis,
                                users: snapshot.userCount, items: snapshot.itemCount, interactions: snapshot.interactionCount,
                                firstEvent: snapshot.timeRange?.lowerBound, lastEvent: snapshot.timeRange?.upperBound,
                                kinds: kinds.map { $0.map(\.rawValue).sorted() }, rowsRead: tally.rowsRead,
                                rowsSkipped: tally.rowsSkipped, bytes: snapshot.file.size,
                                hasCatalog: FileManager.default.fileExists(atPath: catalogPath(of: hash).path))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(info).write(to: infoPath(of: hash), options: .atomic)
        return info
    }

    static func writeCatalog(_ catalog: [CatalogItem], to url: URL) throws {
        let writer = try AtomicFileWriter(folder: url.deletingLastPathComponent())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for item in catalog {
            try writer.write(Array(try encoder.encode(item)))
            try writer.write([0x0A])
        }
        try writer.commit(to: url)
    }

    public func info(_ hash: String) throws -> SnapshotInfo {
        let url = infoPath(of: hash)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw DuetError.notFound(kind: "snapshot record", id: hash) }
        return try JSONDecoder().decode(SnapshotInfo.self, from: data)
    }

    public func list() throws -> [SnapshotInfo] {
        guard FileManager.default.fileExists(atPath: folder.path) else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        return names.filter { $0.hasSuffix(".\(Snapshot.fileExtension)") }
            .compactMap { try? info(String($0.dropLast(Snapshot.fileExtension.count + 1))) }
            .sorted { $0.createdAt < $1.createdAt }
    }

    /// Finds a snapshot by full hash, unique hash prefix, "latest", or a path to a `.dsnap` file.
    public func resolve(_ reference: String) throws -> URL {
        if reference.hasSuffix(".\(Snapshot.fileExtension)") {
            guard FileManager.default.fileExists(atPath: reference) else { throw DuetError.fileNotFound(path: reference) }
            return URL(fileURLWithPath: reference)
        }
        if reference == "latest" {
            guard let latest = try list().last else { throw DuetError.notFound(kind: "snapshot", id: "latest (the home has none)") }
            return path(of: latest.hash)
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let matches = names.filter { $0.hasPrefix(reference) && $0.hasSuffix(".\(Snapshot.fileExtension)") }
        guard !reference.isEmpty, let match = matches.first else { throw DuetError.notFound(kind: "snapshot", id: reference) }
        guard matches.count == 1 else {
            throw DuetError.invalidValue(field: "snapshot", reason: "'\(reference)' matches \(matches.count) snapshots; give more of the hash")
        }
        return folder.appendingPathComponent(match)
    }

    public func open(_ reference: String, verifyHash: Bool = false) throws -> Snapshot {
        try Snapshot(path: resolve(reference).path, verifyHash: verifyHash)
    }

    /// The item names frozen with the snapshot, keyed by id; empty when it has none.
    public func catalog(_ hash: String) throws -> [String: CatalogItem] {
        let url = catalogPath(of: hash)
        guard FileManager.default.fileExists(atPath: url.path) else { return [:] }
        return Dictionary(try WorldCatalog.read(from: url).map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }
}
