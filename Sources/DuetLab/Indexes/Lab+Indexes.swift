public import DuetCore
public import DuetSimilarity
public import DuetStore
public import DuetTraining
public import Foundation

/// What a named similarity index is built from.
public enum IndexBuildSource: Sendable {
    /// A bundle's item vectors (an id, a prefix, or "production"), in a cosine index.
    case bundle(String, VectorIndexLayout)
    /// Item-kNN neighbour lists computed on a snapshot.
    case itemKNN(snapshot: String, ItemKNNConfiguration)
    /// Embeddings made elsewhere (e.g. a content model): raw little-endian float32 rows and one id
    /// per line, in a cosine index.
    case vectors(path: String, ids: String, dimension: Int, VectorIndexLayout)
}

/// How an index over vectors is organised.
public enum VectorIndexLayout: Sendable {
    /// A graph (HNSW): the best recall per vector scored, and chunk-verified loading in Serve.
    case hnsw(HNSWParameters)
    /// k-means cells over 4-bit quantized residuals with an exact re-rank: builds in a fraction of a
    /// graph's time and answers faster at recall ≥ 0.95 on clustered data (`duet bench ann`).
    case partitioned(PartitionParameters)

    func validate() throws {
        switch self {
        case let .hnsw(parameters): try parameters.validate()
        case let .partitioned(parameters): try parameters.validate()
        }
    }
}

/// A built and registered artefact, with what the build cost.
public struct IndexBuild: Sendable {
    public var id: String
    public var manifest: IndexManifest
    public var seconds: Double
}

/// Similarity indexes as their own artefacts: built, registered, published under a name, rolled
/// back, each name on its own generation, never moving the production recommender.
extension Lab {
    /// The artefact's folder; an id outside the file-safe alphabet never becomes a path.
    public func indexFolder(_ id: String) throws -> URL {
        try Identifier.validateFileSafe(id, field: "index id")
        return home.indexesFolder.appendingPathComponent(id)
    }

    /// Builds the artefact, measures its recall@10 against exact search, writes it (content-addressed)
    /// and registers it under `name`. It serves nothing until published.
    public func buildIndex(name: String, from source: IndexBuildSource, threads: Int = 2, actor: String) async throws -> IndexBuild {
        try IndexName.validate(name)
        let clock = ContinuousClock(), started = clock.now
        let id: String
        let manifest: IndexManifest
        switch source {
        case let .bundle(reference, parameters):
            try parameters.validate()
            let bundle = try await openBundle(reference)
            (id, manifest) = try IndexArtefactWriter.graph(name: name, bundle: bundle, recipe: try await registry.model(bundle.id)?.recipe,
                                                           parameters: parameters, threads: threads, into: home.indexesFolder)
        case let .itemKNN(reference, configuration):
            var configuration = configuration
            configuration.threads = threads
            try configuration.validate()
            let snapshot = try snapshots.open(reference)
            (id, manifest) = try IndexArtefactWriter.neighbours(name: name, snapshot: snapshot, catalog: try snapshots.catalog(snapshot.hash),
                                                                configuration: configuration, into: home.indexesFolder)
        case let .vectors(path, idsPath, dimension, parameters):
            try parameters.validate()
            (id, manifest) = try IndexArtefactWriter.vectors(name: name, path: path, idsPath: idsPath, dimension: dimension, parameters: parameters,
                                                             threads: threads, into: home.indexesFolder)
        }
        if try await registry.indexArtefact(id) == nil {
            try await registry.register(IndexArtefactRecord(id: id, manifest: manifest, registeredBy: actor, registeredAt: Date().epochMillis))
        }
        return IndexBuild(id: id, manifest: manifest, seconds: (clock.now - started).seconds)
    }

    /// Resolves a full artefact id, a unique prefix of one, or a published name (its current artefact).
    public func resolveIndex(_ reference: String) async throws -> String {
        if (try? IndexName.validate(reference)) != nil, let current = try await registry.indexHistory(reference).last { return current.to }
        let matches = try await registry.indexArtefacts().map(\.id).filter { $0.hasPrefix(reference) }
        guard !reference.isEmpty, let match = matches.first else { throw DuetError.notFound(kind: "index artefact or published index", id: reference) }
        guard matches.count == 1 else {
            throw DuetError.invalidValue(field: "index", reason: "'\(reference)' matches \(matches.count) artefacts; give more of the id")
        }
        return match
    }

    /// Opens and verifies an artefact: every checksum, the graph or lists.
    public func openIndex(_ reference: String) async throws -> SimilarityIndexArtefact {
        try SimilarityIndexArtefact(folder: try indexFolder(try await resolveIndex(reference)))
    }

    /// Every checksum of an artefact, and each graph chunk against its digest as Serve will check it.
    static func verifyForServing(_ folder: URL) throws -> SimilarityIndexArtefact {
        let artefact = try SimilarityIndexArtefact(folder: folder)
        try artefact.checkGraphChunkDigests()
        return artefact
    }

    /// Points `name` at the artefact. The artefact is opened and verified first: a corrupt one is
    /// refused here, before Serve ever sees the change.
    @discardableResult
    public func publishIndex(_ name: String, artefact reference: String, actor: String, reason: String, expectedGeneration: Int? = nil) async throws -> IndexChange {
        let artefact = try Self.verifyForServing(try indexFolder(try await resolveIndex(reference)))
        let change = try await registry.publish(RegistryRules.IndexPublication(name: name, artefact: artefact.id, actor: actor, reason: reason,
                                                                                expectedGeneration: expectedGeneration))
        await notify(.index(change))
        return change
    }

    /// Moves `name` back one step, or to an artefact (id or prefix) that served under it before.
    @discardableResult
    public func rollbackIndex(_ name: String, to target: String? = nil, actor: String, reason: String) async throws -> IndexChange {
        var destination: String?
        if let target {
            destination = try await resolveIndex(target)
            _ = try Self.verifyForServing(try indexFolder(destination!))
        } else if let current = try await registry.indexHistory(name).last, let previous = current.from {
            _ = try Self.verifyForServing(try indexFolder(previous))
        }
        let change = try await registry.rollbackIndex(RegistryRules.IndexPublication(name: name, artefact: destination, actor: actor, reason: reason))
        await notify(.index(change))
        return change
    }
}

/// Writes index artefacts: the body (graph or lists), the item ids, the catalogue lines (for
/// availability and filters) and, for factor indexes, each item's support; then the manifest.
enum IndexArtefactWriter {
    /// Queries for the recall measurement: a fixed sample, so rebuilding the same index reports the same figure.
    static let recallQueries = 200
    static let recallBeam = 64

    static func graph(name: String, bundle: ModelBundle, recipe: String?, parameters layout: VectorIndexLayout, threads: Int,
                      into folder: URL) throws -> (String, IndexManifest) {
        guard bundle.dimension > 0, bundle.itemCount > 1 else {
            throw DuetError.invalidValue(field: "bundle", reason: "bundle \(bundle.id.prefix(12)) (\(bundle.manifest.modelKind)) has no item vectors to index")
        }
        let built = try VectorBody(layout, rows: bundle.itemFactors, dimension: bundle.dimension, threads: threads)
        let exact = ExactIndex(vectors: bundle.itemFactors, dimension: bundle.dimension, metric: .cosine, owner: bundle)
        let quality = measureRecall(graph: built.similarity, exact: ExactItemSimilarity(exact: exact), ef: built.ef)
        let catalog = bundle.catalog
        let popularity = Array(bundle.popularity)
        var hyper = built.hyperparameters
        hyper["bundleKind"] = .string(bundle.manifest.modelKind)
        return try write(name: name, kind: built.kind, metric: SimilarityMetric.cosine.rawValue, dimension: bundle.dimension, itemIDs: bundle.itemIDs,
                         catalog: catalog, source: IndexSource(algorithm: bundle.manifest.modelKind, bundle: bundle.id,
                                                               snapshot: bundle.manifest.snapshotHash, recipe: recipe),
                         parameters: hyper, quality: quality, graphChunkBytes: built.chunkBytes, into: folder) { folder in
            try built.write(into: folder)
            try folder.file(IndexFiles.support) { try $0.write(array: popularity) }
        }
    }

    /// The answering file of an index over vectors, built: a graph or cells.
    struct VectorBody {
        var kind: IndexKind
        var similarity: any ItemSimilarity
        var bytes: UnsafeRawBufferPointer
        var hyperparameters: [String: ParameterValue]
        /// The effort the recall figure holds for: the beam, or the cells visited.
        var ef: Int
        var chunkBytes: Int?
        /// Keeps the index (and so `bytes`) alive.
        var owner: AnyObject

        init(_ layout: VectorIndexLayout, rows: UnsafeBufferPointer<Float>, dimension: Int, threads: Int) throws {
            switch layout {
            case let .hnsw(parameters):
                let graph = try HNSWIndex.build(rows, dimension: dimension, metric: .cosine, parameters: parameters, threads: threads)
                kind = .hnsw
                similarity = GraphItemSimilarity(graph: graph, ef: IndexArtefactWriter.recallBeam)
                bytes = graph.bytes
                hyperparameters = ["m": .int(parameters.m), "efConstruction": .int(parameters.efConstruction),
                                   "seed": .int(Int(parameters.seed)), "threads": .int(threads)]
                ef = IndexArtefactWriter.recallBeam
                chunkBytes = ChunkDigests.defaultChunkBytes
                owner = graph
            case let .partitioned(parameters):
                let index = try PartitionedIndex.build(rows, dimension: dimension, metric: .cosine, parameters: parameters, threads: threads)
                kind = .partitioned
                similarity = PartitionedItemSimilarity(index: index)
                bytes = index.bytes
                hyperparameters = ["partitions": .int(index.partitionCount), "iterations": .int(parameters.iterations),
                                   "subspaceWidth": .int(parameters.subspaceWidth), "seed": .int(Int(parameters.seed)), "threads": .int(threads)]
                ef = index.defaultProbe(k: 10).partitions
                chunkBytes = nil
                owner = index
            }
        }

        func write(into folder: ContentAddressedFolder) throws {
            try folder.file(kind.body) { try $0.write(bytes) }
            if let chunkBytes { try folder.file(IndexFiles.graphChunks) { try $0.write(ChunkDigests.compute(bytes, chunkBytes: chunkBytes)) } }
        }
    }

    static func vectors(name: String, path: String, idsPath: String, dimension: Int, parameters layout: VectorIndexLayout, threads: Int,
                        into folder: URL) throws -> (String, IndexManifest) {
        guard (1...4_096).contains(dimension) else { throw DuetError.invalidValue(field: "dim", reason: "\(dimension) must be in 1…4096") }
        let file = try MappedFile(path: path)
        guard file.size > 0, file.size % (4 * dimension) == 0 else {
            throw DuetError.corruptFile(path: path, reason: "\(file.size) bytes is not a whole number of \(dimension)-float rows")
        }
        let rows = file.buffer(of: Float.self, at: 0, count: file.size / 4)
        let count = rows.count / dimension
        if let bad = rows.firstIndex(where: { !$0.isFinite }) {
            throw DuetError.corruptFile(path: path, reason: "row \(bad / dimension) holds a value that is not a finite number")
        }
        let itemIDs = try ModelBundle.ids(MappedFile(path: idsPath), expected: count, name: idsPath)
        for (line, id) in itemIDs.enumerated() {
            if let problem = Identifier.problem(with: id) { throw DuetError.corruptFile(path: idsPath, reason: "line \(line + 1): item id \(problem)") }
        }
        guard Set(itemIDs).count == count else { throw DuetError.corruptFile(path: idsPath, reason: "an item id appears twice") }
        let built = try VectorBody(layout, rows: rows, dimension: dimension, threads: threads)
        let exact = ExactIndex(vectors: rows, dimension: dimension, metric: .cosine, owner: file)
        let quality = measureRecall(graph: built.similarity, exact: ExactItemSimilarity(exact: exact), ef: built.ef)
        return try write(name: name, kind: built.kind, metric: SimilarityMetric.cosine.rawValue, dimension: dimension, itemIDs: itemIDs, catalog: [:],
                         source: IndexSource(algorithm: "vectors"), parameters: built.hyperparameters, quality: quality,
                         graphChunkBytes: built.chunkBytes, into: folder) { folder in
            try built.write(into: folder)
        }
    }

    static func neighbours(name: String, snapshot: Snapshot, catalog: [String: CatalogItem], configuration: ItemKNNConfiguration,
                           into folder: URL) throws -> (String, IndexManifest) {
        let model = ItemKNN.train(InteractionMatrix(snapshot: snapshot), configuration: configuration)
        let itemIDs = (0..<snapshot.itemCount).map { snapshot.itemID($0) }
        return try write(name: name, kind: .neighbours, metric: SimilarityMetric.cosine.rawValue, dimension: 0, itemIDs: itemIDs, catalog: catalog,
                         source: IndexSource(algorithm: "item-knn", snapshot: snapshot.hash), parameters: configuration.hyperparameters,
                         quality: nil, into: folder) { folder in
            try folder.file(IndexFiles.neighbours) { writer in
                try NeighbourLists.write(starts: model.neighbourStart, neighbours: model.neighbours, similarities: model.similarities, to: writer)
            }
        }
    }

    static func write(name: String, kind: IndexKind, metric: String, dimension: Int, itemIDs: [String], catalog: [String: CatalogItem],
                      source: IndexSource, parameters: [String: ParameterValue], quality: IndexQuality?, graphChunkBytes: Int? = nil, into parent: URL,
                      body: (ContentAddressedFolder) throws -> Void) throws -> (String, IndexManifest) {
        var written: IndexManifest?
        let id = try ContentAddressedFolder.write(into: parent, fill: { folder in
            try body(folder)
            try folder.file(IndexFiles.itemIDs) { writer in for id in itemIDs { try writer.write(Array((id + "\n").utf8)) } }
            let entries = itemIDs.compactMap { catalog[$0] }
            if !entries.isEmpty { try folder.file(IndexFiles.catalog) { try CatalogLines.write(entries, to: $0) } }
        }, manifest: { files in
            let manifest = IndexManifest(name: name, kind: kind, metric: metric, dimension: dimension, itemCount: itemIDs.count, source: source,
                                         parameters: parameters, quality: quality, createdAt: Date().epochMillis, files: files,
                                         graphChunkBytes: graphChunkBytes)
            try manifest.validate()
            written = manifest
            return try manifest.canonicalJSON()
        })
        return (id, written!)
    }

    /// Recall@10 of `index` against `exact` on a fixed sample of items, each asking for its own neighbours.
    static func measureRecall(graph: any ItemSimilarity, exact: any ItemSimilarity, ef: Int = recallBeam) -> IndexQuality {
        var rng = SplitMix64(seed: 7)
        let count = graph.itemCount
        let queries = min(recallQueries, count)
        let sample = count <= recallQueries ? Array(0..<count) : (0..<queries).map { _ in rng.below(count) }
        let filter = ItemFilter(excluded: ExclusionSet(capacity: count))
        var found = 0, expected = 0
        for item in sample {
            let truth = Set(exact.neighbours(of: item, k: 10, filter: filter).map(\.id))
            found += graph.neighbours(of: item, k: 10, filter: filter).filter { truth.contains($0.id) }.count
            expected += truth.count
        }
        return IndexQuality(recallAt10: expected == 0 ? 1 : Double(found) / Double(expected), queries: sample.count, ef: ef)
    }
}
