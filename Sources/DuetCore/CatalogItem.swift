import Foundation

/// An item as people see it: what the dashboards and the CLI print next to an id.
public struct CatalogItem: Hashable, Sendable, Codable {
    public var id: String
    public var title: String
    public var artist: String?
    public var tags: [String]
    /// Unavailable items (taken down, region-locked) are never recommended.
    public var available: Bool
    /// Named attributes similarity filters can test, e.g. `language: "sv"`, `explicit: "false"`.
    public var attributes: [String: String]?

    public init(id: String, title: String, artist: String? = nil, tags: [String] = [], available: Bool = true,
                attributes: [String: String]? = nil) {
        self.id = id
        self.title = title
        self.artist = artist
        self.tags = tags
        self.available = available
        self.attributes = attributes
    }

    public func validate() throws(DuetError) {
        try Identifier.validate(id, field: "catalog item id")
        if title.isEmpty { throw .invalidValue(field: "title", reason: "item '\(id)' has an empty title") }
    }

    /// "Title — Artist", or the title alone.
    public var displayName: String {
        if let artist, !artist.isEmpty, artist != title { return "\(title) — \(artist)" }
        return title
    }
}

/// The catalogue as bundles and indexes store it: one JSON object per line, keys sorted.
public enum CatalogLines {
    public static func write(_ items: [CatalogItem], to writer: AtomicFileWriter) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for item in items {
            try writer.write(Array(try encoder.encode(item)))
            try writer.write([0x0A])
        }
    }
}
