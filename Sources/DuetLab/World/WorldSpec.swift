public import DuetCore
public import Foundation

/// The files of a world folder.
public enum WorldFiles {
    public static let spec = "world.json"
    public static let catalog = "catalog.jsonl"
    public static let events = "events.tsv"
}

/// Everything that determines a synthetic world. The same spec always gives the same world,
/// and the ground truth is recomputed from it, never stored.
public struct WorldSpec: Codable, Sendable, Hashable {
    public var seed: UInt64
    public var users: Int
    public var tracks: Int
    public var artists: Int
    public var genres: Int
    /// Events to generate, approximately (per-user activity is random).
    public var events: Int
    /// Dimension of the latent taste space.
    public var dimension: Int
    public var days: Int
    /// Epoch milliseconds of the first day.
    public var start: EpochMillis
    /// Zipf exponent of artist popularity within a genre and of track popularity within an artist.
    public var zipf: Double
    /// Share of tracks that are unavailable (taken down), so filters have work to do.
    public var unavailableShare: Double

    public init(seed: UInt64 = 42, users: Int = 5_000, tracks: Int = 20_000, artists: Int? = nil, genres: Int = 16,
                events: Int = 250_000, dimension: Int = 16, days: Int = 28, start: EpochMillis = 1_767_225_600_000,
                zipf: Double = 1.0, unavailableShare: Double = 0.01) {
        self.seed = seed
        self.users = users
        self.tracks = tracks
        self.artists = artists ?? max(genres, tracks / 10)
        self.genres = genres
        self.events = events
        self.dimension = dimension
        self.days = days
        self.start = start
        self.zipf = zipf
        self.unavailableShare = unavailableShare
    }

    public func validate() throws(DuetError) {
        func positive(_ value: Int, _ name: String) throws(DuetError) {
            if value <= 0 { throw .invalidValue(field: name, reason: "must be positive, got \(value)") }
        }
        try positive(users, "users")
        try positive(tracks, "tracks")
        try positive(genres, "genres")
        try positive(events, "events")
        try positive(dimension, "dimension")
        try positive(days, "days")
        guard artists >= genres, artists <= tracks else {
            throw .invalidValue(field: "artists", reason: "\(artists) must be between the genre count (\(genres)) and the track count (\(tracks))")
        }
        guard users <= 100_000_000, tracks <= 100_000_000 else {
            throw .invalidValue(field: "size", reason: "at most 100,000,000 users and tracks")
        }
        guard zipf > 0, zipf < 4 else { throw .invalidValue(field: "zipf", reason: "\(zipf) must be in (0, 4)") }
        guard (0..<1).contains(unavailableShare) else {
            throw .invalidValue(field: "unavailable share", reason: "\(unavailableShare) must be in [0, 1)")
        }
    }
}

/// What generation produced, written next to the spec.
public struct WorldSummary: Codable, Sendable, Hashable {
    public var spec: WorldSpec
    public var events: Int
    public var plays: Int
    public var skips: Int
    public var saves: Int
    public var eventsSHA256: String
    public var seconds: Double
}

public enum WorldCatalog {
    public static func read(from url: URL) throws -> [CatalogItem] {
        let decoder = JSONDecoder()
        var items: [CatalogItem] = []
        try LineReader(path: url.path).forEachLine { line, number in
            guard !line.isEmpty else { return }
            do {
                let item = try decoder.decode(CatalogItem.self, from: Data(line))
                try item.validate()
                items.append(item)
            } catch {
                throw DuetError.malformedRow(file: url.path, line: number, reason: Importer.describe(error))
            }
        }
        return items
    }
}
