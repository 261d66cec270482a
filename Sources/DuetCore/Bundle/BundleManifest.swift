public import Foundation

/// A hyperparameter as it appears in a manifest: JSON numbers, strings and booleans.
/// JSON does not keep 2.0 apart from 2, so numbers compare by value.
public enum ParameterValue: Hashable, Sendable, Codable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else { self = .string(try container.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .int(value): try container.encode(value)
        case let .double(value): try container.encode(value)
        case let .string(value): try container.encode(value)
        case let .bool(value): try container.encode(value)
        }
    }

    public var number: Double? {
        switch self {
        case let .int(value): return Double(value)
        case let .double(value): return value
        default: return nil
        }
    }

    public static func == (lhs: ParameterValue, rhs: ParameterValue) -> Bool {
        switch (lhs, rhs) {
        case let (.string(a), .string(b)): return a == b
        case let (.bool(a), .bool(b)): return a == b
        default: return lhs.number != nil && lhs.number == rhs.number
        }
    }

    public func hash(into hasher: inout Hasher) {
        if let number { hasher.combine(number) } else { hasher.combine(description) }
    }

    public var description: String {
        switch self {
        case let .int(value): return String(value)
        case let .double(value): return String(value)
        case let .string(value): return value
        case let .bool(value): return String(value)
        }
    }
}

/// One file of a bundle with the checksum that must hold before the bundle may serve.
public struct BundleFile: Hashable, Sendable, Codable {
    public var sha256: String
    public var bytes: Int

    public init(sha256: String, bytes: Int) {
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// A similarity index carried by a bundle, e.g. `items/als-64`, so Serve can say which one answered.
public struct IndexDescriptor: Hashable, Sendable, Codable {
    public var name: String
    public var version: Int
    /// "hnsw" or "exact".
    public var kind: String
    public var metric: String
    public var file: String

    public init(name: String, version: Int, kind: String, metric: String, file: String) {
        self.name = name
        self.version = version
        self.kind = kind
        self.metric = metric
        self.file = file
    }
}

public struct BundleCounts: Hashable, Sendable, Codable {
    public var users: Int
    public var items: Int
    public var interactions: Int

    public init(users: Int, items: Int, interactions: Int) {
        self.users = users
        self.items = items
        self.interactions = interactions
    }
}

/// `manifest.json` of an immutable model bundle. The bundle's id is the SHA-256 of its contents,
/// and every file listed here is verified before the bundle can serve.
public struct BundleManifest: Hashable, Sendable, Codable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    public var name: String
    /// "als", "bpr", "itemknn", "popularity".
    public var modelKind: String
    public var hyperparameters: [String: ParameterValue]
    public var snapshotHash: String
    public var createdAt: EpochMillis
    public var counts: BundleCounts
    public var dimension: Int
    /// File name (relative to the bundle folder) → checksum and size.
    public var files: [String: BundleFile]
    public var indexes: [IndexDescriptor]
    /// The bundle this one refreshes, or the production bundle it was trained to beat.
    public var parent: String?
    /// "name@version" of the recipe that made it.
    public var recipe: String?

    public init(formatVersion: Int = BundleManifest.currentFormatVersion, name: String, modelKind: String,
                hyperparameters: [String: ParameterValue], snapshotHash: String, createdAt: EpochMillis,
                counts: BundleCounts, dimension: Int, files: [String: BundleFile], indexes: [IndexDescriptor] = [],
                parent: String? = nil, recipe: String? = nil) {
        self.formatVersion = formatVersion
        self.name = name
        self.modelKind = modelKind
        self.hyperparameters = hyperparameters
        self.snapshotHash = snapshotHash
        self.createdAt = createdAt
        self.counts = counts
        self.dimension = dimension
        self.files = files
        self.indexes = indexes
        self.parent = parent
        self.recipe = recipe
    }

    public func validate() throws(DuetError) {
        guard formatVersion == Self.currentFormatVersion else {
            throw .invalidValue(field: "formatVersion", reason: "bundle format \(formatVersion) is not supported (this Duet reads \(Self.currentFormatVersion))")
        }
        guard dimension >= 0, counts.users >= 0, counts.items >= 0 else {
            throw .invalidValue(field: "manifest", reason: "negative counts or dimension")
        }
        for (file, entry) in files {
            // Files live inside the bundle folder: no absolute paths, no climbing out.
            if file.isEmpty || file.hasPrefix("/") || file.split(separator: "/").contains("..") {
                throw .invalidValue(field: "files", reason: "'\(file)' is not a path inside the bundle")
            }
            guard entry.sha256.count == 64, entry.sha256.allSatisfy(\.isHexDigit) else {
                throw .invalidValue(field: "files", reason: "'\(file)' has a malformed sha256")
            }
        }
        for index in indexes where files[index.file] == nil {
            throw .invalidValue(field: "indexes", reason: "index '\(index.name)' names '\(index.file)', which the manifest does not list")
        }
    }

    /// Canonical JSON: sorted keys, so the same manifest always hashes the same.
    public func canonicalJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
