public import Foundation

/// File names inside a similarity index artefact's folder.
public enum IndexFiles {
    public static let manifest = "manifest.json"
    /// An HNSW graph with its vectors (`HNSWIndex`'s file format).
    public static let graph = "index.hnsw"
    /// The SHA-256 of each `graphChunkBytes` slice of the graph (`ChunkDigests`), so Serve can
    /// verify each part as it first reads it.
    public static let graphChunks = "index.hnsw.chunks"
    /// Cells over 4-bit quantized residuals, with the vectors (`PartitionedIndex`'s file format).
    public static let partitions = "index.ivf"
    /// Sparse neighbour lists: u64 row starts (items + 1), then u32 neighbours, then f32 similarities.
    public static let neighbours = "neighbours.bin"
    public static let itemIDs = "items.ids"
    /// The catalogue lines of the indexed items: availability and attributes for filters.
    public static let catalog = "catalog.jsonl"
    /// f32 per item: how many training users it had. Items with too few are never answered (see `SimilarItemsPolicy`).
    public static let support = "support.f32"
}

/// How an index answers: a graph over item vectors, k-means cells over quantized item vectors,
/// or precomputed neighbour lists (item-kNN).
public enum IndexKind: String, Hashable, Sendable, Codable, CaseIterable {
    case hnsw, neighbours, partitioned

    /// The file that answers.
    public var body: String {
        switch self {
        case .hnsw: IndexFiles.graph
        case .neighbours: IndexFiles.neighbours
        case .partitioned: IndexFiles.partitions
        }
    }
}

/// What an index was built from, so its lineage is part of its identity.
public struct IndexSource: Hashable, Sendable, Codable {
    /// "als", "bpr" (a bundle's item factors), "item-knn" (co-occurrence on a snapshot) or
    /// "vectors" (embeddings made elsewhere).
    public var algorithm: String
    public var bundle: String?
    public var snapshot: String?
    /// "name@version" of the recipe behind the bundle, when it has one.
    public var recipe: String?

    public init(algorithm: String, bundle: String? = nil, snapshot: String? = nil, recipe: String? = nil) {
        self.algorithm = algorithm
        self.bundle = bundle
        self.snapshot = snapshot
        self.recipe = recipe
    }
}

/// Recall@10 against an exact search over the same rows, measured when the index was built on
/// items held out from nothing but the measurement (a fixed random sample).
public struct IndexQuality: Hashable, Sendable, Codable {
    public var recallAt10: Double
    public var queries: Int
    /// The search beam the figure holds for.
    public var ef: Int

    public init(recallAt10: Double, queries: Int, ef: Int) {
        self.recallAt10 = recallAt10
        self.queries = queries
        self.ef = ef
    }
}

/// `manifest.json` of a similarity index artefact: immutable, named by the SHA-256 of this file,
/// with every other file's checksum verified before the index may answer.
public struct IndexManifest: Hashable, Sendable, Codable {
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The name it is published under, e.g. `tracks/als-64`.
    public var name: String
    public var kind: IndexKind
    /// "cosine" or "ip".
    public var metric: String
    /// 0 for neighbour lists.
    public var dimension: Int
    public var itemCount: Int
    public var source: IndexSource
    public var parameters: [String: ParameterValue]
    public var quality: IndexQuality?
    public var createdAt: EpochMillis
    public var files: [String: BundleFile]
    /// Set when the graph has chunk digests (`IndexFiles.graphChunks`); absent in older artefacts,
    /// which Serve verifies whole.
    public var graphChunkBytes: Int?

    public init(formatVersion: Int = IndexManifest.currentFormatVersion, name: String, kind: IndexKind, metric: String, dimension: Int,
                itemCount: Int, source: IndexSource, parameters: [String: ParameterValue], quality: IndexQuality?,
                createdAt: EpochMillis, files: [String: BundleFile], graphChunkBytes: Int? = nil) {
        self.formatVersion = formatVersion
        self.name = name
        self.kind = kind
        self.metric = metric
        self.dimension = dimension
        self.itemCount = itemCount
        self.source = source
        self.parameters = parameters
        self.quality = quality
        self.createdAt = createdAt
        self.files = files
        self.graphChunkBytes = graphChunkBytes
    }

    public func validate() throws(DuetError) {
        guard formatVersion == Self.currentFormatVersion else {
            throw .invalidValue(field: "formatVersion", reason: "index format \(formatVersion) is not supported (this Duet reads \(Self.currentFormatVersion))")
        }
        try IndexName.validate(name)
        guard itemCount >= 1, dimension >= 0 else { throw .invalidValue(field: "manifest", reason: "an index needs at least one item and a non-negative dimension") }
        for required in [kind.body, IndexFiles.itemIDs] where files[required] == nil {
            throw .invalidValue(field: "files", reason: "a \(kind.rawValue) index must list \(required)")
        }
        for (file, entry) in files {
            guard [IndexFiles.graph, IndexFiles.graphChunks, IndexFiles.neighbours, IndexFiles.partitions, IndexFiles.itemIDs, IndexFiles.catalog,
                   IndexFiles.support].contains(file) else {
                throw .invalidValue(field: "files", reason: "'\(file)' is not a file an index holds")
            }
            guard entry.sha256.count == 64, entry.sha256.allSatisfy(\.isHexDigit), entry.bytes >= 0 else {
                throw .invalidValue(field: "files", reason: "'\(file)' has a malformed checksum or size")
            }
        }
        switch (graphChunkBytes, files[IndexFiles.graphChunks]) {
        case (nil, nil):
            break
        case let (chunkBytes?, digests?):
            try ChunkDigests.validate(chunkBytes: chunkBytes)
            let graphBytes = files[IndexFiles.graph]?.bytes ?? 0
            guard kind == .hnsw, digests.bytes == ChunkDigests.chunkCount(fileBytes: graphBytes, chunkBytes: chunkBytes) * ChunkDigests.digestBytes else {
                throw .invalidValue(field: "files", reason: "\(IndexFiles.graphChunks) does not hold one digest per \(chunkBytes)-byte chunk of \(IndexFiles.graph)")
            }
        default:
            throw .invalidValue(field: "graphChunkBytes", reason: "graphChunkBytes and \(IndexFiles.graphChunks) come together")
        }
    }

    public func canonicalJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// Index names: one to four lowercase segments joined by `/` (e.g. `tracks/als-64`), so they read
/// well in a URL path and can never climb out of a folder.
public enum IndexName {
    public static func validate(_ name: String) throws(DuetError) {
        let segments = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, name.count <= 100, (1...4).contains(segments.count) else {
            throw .invalidValue(field: "index name", reason: "'\(name)' must be 1–4 segments joined by '/', at most 100 characters")
        }
        for segment in segments {
            guard let first = segment.first, first.isASCII, first.isLetter || first.isNumber,
                  segment.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }) else {
                throw .invalidValue(field: "index name", reason: "'\(name)': each segment is lowercase letters, digits, '-', '_' or '.', starting with a letter or digit")
            }
        }
    }
}

/// One step of an index name's alias history (append-only), like production's.
public struct IndexChange: Codable, Sendable, Hashable {
    public enum Action: String, Codable, Sendable, Hashable, CaseIterable { case publish, rollback }

    public var name: String
    public var generation: Int
    public var action: Action
    public var from: String?
    public var to: String
    public var actor: String
    public var reason: String
    public var changedAt: EpochMillis

    public init(name: String, generation: Int, action: Action, from: String?, to: String, actor: String, reason: String, changedAt: EpochMillis) {
        self.name = name
        self.generation = generation
        self.action = action
        self.from = from
        self.to = to
        self.actor = actor
        self.reason = reason
        self.changedAt = changedAt
    }
}

/// What Serve reads for one name: the artefact published under it and its generation.
public struct PublishedIndex: Codable, Sendable, Hashable {
    public var name: String
    public var artefact: String
    public var generation: Int

    public init(name: String, artefact: String, generation: Int) {
        self.name = name
        self.artefact = artefact
        self.generation = generation
    }
}

/// A built artefact as the registry knows it.
public struct IndexArtefactRecord: Codable, Sendable, Hashable {
    public var id: String
    public var manifest: IndexManifest
    public var registeredBy: String
    public var registeredAt: EpochMillis

    public init(id: String, manifest: IndexManifest, registeredBy: String, registeredAt: EpochMillis) {
        self.id = id
        self.manifest = manifest
        self.registeredBy = registeredBy
        self.registeredAt = registeredAt
    }

    public var name: String { manifest.name }
}
