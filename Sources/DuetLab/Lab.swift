public import DuetCore
public import DuetStore
public import DuetTraining
public import Foundation
import DuetKernels
import DuetSimilarity

/// Which algorithm to train, with its settings.
public enum TrainingAlgorithm: Sendable {
    case als(ALSConfiguration)
    case bpr(BPRConfiguration)
    case itemKNN(ItemKNNConfiguration)
    case popularity

    public var name: String {
        switch self {
        case .als: "als"
        case .bpr: "bpr"
        case .itemKNN: ItemKNN.kind
        case .popularity: "popularity"
        }
    }

    /// Threads the training asked for; index building uses as many.
    public var threads: Int {
        switch self {
        case let .als(configuration): configuration.threads
        case let .bpr(configuration): configuration.threads
        case let .itemKNN(configuration): configuration.threads
        case .popularity: 1
        }
    }

    public func train(_ matrix: InteractionMatrix, progress: TrainingProgress? = nil) throws -> FactorModel {
        switch self {
        case let .als(configuration): return try ALS.train(matrix, configuration: configuration, progress: progress)
        case let .bpr(configuration): return try BPR.train(matrix, configuration: configuration, progress: progress)
        case let .itemKNN(configuration):
            try configuration.validate()
            return ItemKNN.recommender(matrix, configuration: configuration)
        case .popularity: return Popularity.train(matrix)
        }
    }
}

/// The metrics of both sides of an offline comparison, and the paired differences.
public struct OfflineComparison: Codable, Sendable {
    public var candidate: String
    public var baseline: String
    public var baselineKind: String
    public var snapshot: String
    public var split: String
    public var candidateMetrics: RankingMetrics
    public var baselineMetrics: RankingMetrics
    public var differences: [PairedDifference]
    public var warnings: [String]
}

/// The Lab's view of one Duet home: snapshots, splits, bundles and the registry, and the
/// operations that move a model from data to production.
public final class Lab: Sendable {
    public let home: DuetHome
    public let registry: any LabRegistry
    public let snapshots: SnapshotStore
    public let splits: SplitStore
    /// Delivers notifications of the Lab's changes to the registered webhooks.
    public let webhooks: WebhookDispatcher

    /// The embedded default: the home's SQLite registry.
    public convenience init(home: DuetHome) throws {
        try home.prepare()
        try self.init(home: home, registry: SQLiteRegistry(path: home.registryPath.path))
    }

    /// Any registry (e.g. PostgreSQL shared by several machines); bundles and snapshots stay in the home.
    public init(home: DuetHome, registry: any LabRegistry) throws {
        try home.prepare()
        self.home = home
        self.registry = registry
        snapshots = SnapshotStore(home: home)
        splits = SplitStore(home: home)
        webhooks = WebhookDispatcher(registry: registry)
    }

    // MARK: - Splits

    public func split(snapshot reference: String, method: SplitMethod) throws -> SplitRecord {
        let snapshot = try snapshots.open(reference)
        return try splits.save(try Split(snapshot: snapshot, method: method))
    }

    /// The split a record describes, recomputed from its snapshot (splits are pure functions of both).
    public func loadSplit(_ id: String) throws -> (SplitRecord, Snapshot, Split) {
        let record = try splits.load(id)
        let snapshot = try snapshots.open(record.snapshot)
        return (record, snapshot, try Split(snapshot: snapshot, method: record.method))
    }

    // MARK: - Training

    /// Trains on the split's train part (or the whole snapshot) and writes an immutable bundle.
    /// With `register`, the bundle becomes a candidate in the registry.
    /// With `parent` (a bundle id or prefix), the registered model names the bundle it descends from:
    /// the lineage of a refreshed or tuned model.
    public func train(snapshot reference: String, split splitID: String?, algorithm: TrainingAlgorithm, name: String,
                      register: Bool, parent parentReference: String? = nil, owner: Owner? = nil, recipe: String? = nil, buildIndexes: Bool = true,
                      progress: TrainingProgress? = nil) async throws -> (bundleID: String, model: FactorModel) {
        try owner?.validate()
        var parent: String?
        if let parentReference {
            guard register else { throw DuetError.invalidValue(field: "parent", reason: "lineage is recorded in the registry; add --register") }
            parent = try await resolveBundle(parentReference)
            guard try await registry.model(parent!) != nil else {
                throw DuetError.invalidValue(field: "parent", reason: "bundle \(parent!.prefix(12)) is not registered")
            }
        }
        let snapshot: Snapshot
        let matrix: InteractionMatrix
        if let splitID {
            let (record, splitSnapshot, split) = try loadSplit(splitID)
            if reference != "latest", !record.snapshot.hasPrefix(reference), try snapshots.resolve(reference).lastPathComponent != "\(record.snapshot).\(Snapshot.fileExtension)" {
                throw DuetError.invalidValue(field: "split", reason: "split \(splitID) belongs to snapshot \(record.snapshot.prefix(12)), not \(reference)")
            }
            snapshot = splitSnapshot
            matrix = split.matrix(.train, of: snapshot)
        } else {
            snapshot = try snapshots.open(reference)
            matrix = InteractionMatrix(snapshot: snapshot)
        }
        var model = try algorithm.train(matrix, progress: progress)
        model.hyperparameters["split"] = .string(splitID ?? "none")
        let catalog = try snapshots.catalog(snapshot.hash)
        let bundleID = try BundleWriter.write(model, name: name, snapshot: snapshot, history: matrix, catalog: catalog, parent: parent, recipe: recipe,
                                              attachments: buildIndexes ? try BundleIndexes.attachments(for: model, threads: algorithm.threads) : [], into: home.bundlesFolder)
        if register, try await registry.model(bundleID) == nil {
            try await registry.register(ModelRecord(id: bundleID, name: name, kind: model.kind, snapshot: snapshot.hash,
                                                    parent: parent, createdAt: Date().epochMillis, owner: owner, recipe: recipe))
        }
        return (bundleID, model)
    }

    // MARK: - Bundles

    /// The bundle's folder; an id outside the file-safe alphabet never becomes a path.
    public func bundleFolder(_ id: String) throws -> URL {
        try Identifier.validateFileSafe(id, field: "bundle id")
        return home.bundlesFolder.appendingPathComponent(id)
    }

    /// Where offline evaluations are written as JSON.
    public var evaluationsFolder: URL { home.root.appendingPathComponent("evaluations", isDirectory: true) }

    /// Marks a candidate as rejected: it can no longer be promoted (production models roll back instead).
    public func reject(_ reference: String) async throws -> String {
        let id = try await resolveBundle(reference)
        try await registry.setStatus(.rejected, of: id)
        return id
    }

    /// Resolves "production", a full id or a unique id prefix to a bundle id.
    public func resolveBundle(_ reference: String) async throws -> String {
        if reference == "production" {
            let production = try await registry.production()
            guard let model = production.model else { throw DuetError.notFound(kind: "production model", id: "production (nothing is promoted yet)") }
            return model
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: home.bundlesFolder.path)) ?? []
        let matches = names.filter { !$0.hasPrefix(".") && $0.hasPrefix(reference) }
        guard !reference.isEmpty, let match = matches.first else { throw DuetError.notFound(kind: "bundle", id: reference) }
        guard matches.count == 1 else {
            throw DuetError.invalidValue(field: "bundle", reason: "'\(reference)' matches \(matches.count) bundles; give more of the id")
        }
        return match
    }

    /// Opens and verifies every checksum.
    public func openBundle(_ reference: String) async throws -> ModelBundle {
        try ModelBundle(folder: try bundleFolder(try await resolveBundle(reference)))
    }

    // MARK: - Offline evaluation

    /// `matrix` (over `snapshot`'s index space) without the (user, item) pairs `seen` holds.
    static func dropPairs(of matrix: InteractionMatrix, in snapshot: Snapshot, seenIn seen: Snapshot) -> InteractionMatrix {
        var triples: [(row: Int, column: Int, value: Float)] = []
        triples.reserveCapacity(matrix.nonZeroCount)
        for user in 0..<matrix.rows {
            let seenUser = seen.userIndex(of: snapshot.userID(user))
            let seenItems: Set<UInt32> = seenUser.map { Set(seen.row($0).map { seen.items[$0] }) } ?? []
            for position in matrix.rowStart[user]..<matrix.rowStart[user + 1] {
                let item = Int(matrix.indices[position])
                if let mapped = seen.itemIndex(of: snapshot.itemID(item)), seenItems.contains(UInt32(mapped)) { continue }
                triples.append((user, item, matrix.values[position]))
            }
        }
        return InteractionMatrix(rows: matrix.rows, columns: matrix.columns, triples: triples)
    }

    /// Compares `candidate` with `baseline` ("production", "popularity" or a bundle) on the candidate's
    /// held-out split, user by user, with bootstrap CIs. Stores the evaluation when `store` is set.
    /// With `unseenBy` (a snapshot hash), held-out pairs that snapshot holds are dropped: a baseline
    /// trained on it would be judged on what it memorised (a refresh's gate uses production's snapshot).
    public func evaluate(candidate reference: String, baseline baselineReference: String, k: Int = 10, resamples: Int = 1_000,
                         seed: UInt64 = 42, threads: Int = 1, store: Bool = true, unseenBy: String? = nil) async throws -> (OfflineComparison, Int64?) {
        let (comparison, _) = try await compareOffline(candidate: reference, baseline: baselineReference, k: k, resamples: resamples,
                                                       seed: seed, threads: threads, unseenBy: unseenBy)
        guard store else { return (comparison, nil) }
        guard try await registry.model(comparison.candidate) != nil else { return (comparison, nil) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(comparison)
        let now = Date().epochMillis
        // The full comparison as a file too, for people and notebooks; the registry keeps the same JSON.
        let baselineID = comparison.baseline
        let report = evaluationsFolder.appendingPathComponent("\(comparison.candidate.prefix(12))-vs-\(baselineID.prefix(12))-\(now).json")
        try FileManager.default.createDirectory(at: evaluationsFolder, withIntermediateDirectories: true)
        try data.write(to: report, options: .atomic)
        let record = EvaluationRecord(candidate: comparison.candidate, baseline: baselineID == "popularity" ? nil : baselineID,
                                      baselineKind: comparison.baselineKind, snapshot: comparison.snapshot,
                                      split: comparison.split, k: k, metricsJSON: String(decoding: data, as: UTF8.self), reportPath: report.path,
                                      createdAt: now)
        return (comparison, try await registry.add(record))
    }

    /// The per-user values behind an offline comparison, for export: users by id, in snapshot order.
    public struct PerUserComparison: Sendable {
        public var userIDs: [String]
        public var testItems: [Int]
        public var candidate: PerUserMetrics
        public var baseline: PerUserMetrics
    }

    /// Ranks both models over the candidate's held-out split; nothing is stored. With 0 resamples,
    /// no paired intervals are computed.
    public func compareOffline(candidate reference: String, baseline baselineReference: String, k: Int = 10, resamples: Int = 1_000,
                               seed: UInt64 = 42, threads: Int = 1, unseenBy: String? = nil) async throws -> (OfflineComparison, PerUserComparison) {
        let candidate = try await openBundle(reference)
        guard case let .string(splitID)? = candidate.manifest.hyperparameters["split"], splitID != "none" else {
            throw DuetError.refused("bundle \(candidate.id.prefix(12)) was trained on its whole snapshot, so nothing is held out to evaluate on; train it with --split")
        }
        let (_, snapshot, split) = try loadSplit(splitID)
        let train = split.matrix(.train, of: snapshot)
        var test = split.matrix(.test, of: snapshot)
        var warnings: [String] = []
        if let unseenBy {
            let seen = try snapshots.open(unseenBy)
            let before = test.nonZeroCount
            test = Self.dropPairs(of: test, in: snapshot, seenIn: seen)
            warnings.append("\(before - test.nonZeroCount) of \(before) held-out pairs were left out: snapshot \(unseenBy.prefix(12)) (the baseline's training data) holds them")
        }
        let candidateModel = try BundleScorer(bundle: candidate, snapshot: snapshot)
        let baselineModel: any ItemScorer
        let baselineID: String?
        let baselineKind: String
        if baselineReference == "popularity" {
            baselineModel = Popularity.train(train)
            baselineID = nil
            baselineKind = "popularity"
        } else {
            let bundle = try await openBundle(baselineReference)
            if bundle.manifest.snapshotHash != snapshot.hash || bundle.manifest.hyperparameters["split"] != .string(splitID) {
                warnings.append("baseline \(bundle.id.prefix(12)) was not trained on this split; its training data may overlap the test users' held-out items")
            }
            baselineModel = try BundleScorer(bundle: bundle, snapshot: snapshot)
            baselineID = bundle.id
            baselineKind = bundle.manifest.modelKind
        }
        let (candidateMetrics, candidateUsers) = Evaluator.evaluate(candidateModel, train: train, test: test, k: k,
                                                                    itemFactors: candidateModel.itemFactorsForDiversity, threads: threads)
        let (baselineMetrics, baselineUsers) = Evaluator.evaluate(baselineModel, train: train, test: test, k: k, threads: threads)
        // No resamples: the per-user values only (an export), no intervals.
        let differences = resamples == 0 ? [] : try RankingMetrics.names.compactMap { name -> PairedDifference? in
            guard let a = baselineUsers.series(name), let b = candidateUsers.series(name) else { return nil }
            return try PairedBootstrap.compare(metric: "\(name)@\(k)", baseline: a, candidate: b, resamples: resamples, seed: seed)
        }
        let comparison = OfflineComparison(candidate: candidate.id, baseline: baselineID ?? "popularity", baselineKind: baselineKind,
                                           snapshot: snapshot.hash, split: splitID, candidateMetrics: candidateMetrics,
                                           baselineMetrics: baselineMetrics, differences: differences, warnings: warnings)
        let perUser = PerUserComparison(userIDs: candidateUsers.users.map { snapshot.userID($0) },
                                        testItems: candidateUsers.users.map { test.row($0).count },
                                        candidate: candidateUsers, baseline: baselineUsers)
        return (comparison, perUser)
    }
}

/// Scores a bundle's model over another snapshot's index space, matching users and items by id:
/// the bundle is judged as it would serve. Users it does not know get its popularity list.
/// An item-kNN bundle scores from the user's history in the bundle, as Serve does.
struct BundleScorer: ItemScorer {
    let bundle: ModelBundle
    let itemCount: Int
    let userMap: [Int32]
    let itemMap: [Int32]
    let neighbourLists: NeighbourLists?
    let mostPopular: Float

    init(bundle: ModelBundle, snapshot: Snapshot) throws {
        self.bundle = bundle
        itemCount = snapshot.itemCount
        userMap = (0..<snapshot.userCount).map { Int32(bundle.userIndex(of: snapshot.userID($0)) ?? -1) }
        itemMap = (0..<snapshot.itemCount).map { Int32(bundle.itemIndex(of: snapshot.itemID($0)) ?? -1) }
        neighbourLists = try NeighbourLists.recommender(in: bundle)?.lists
        mostPopular = bundle.popularity.max() ?? 0
    }

    var itemFactorsForDiversity: (factors: [Float], dimension: Int)? {
        let d = bundle.dimension
        guard d > 0 else { return nil }
        var factors = [Float](repeating: 0, count: itemCount * d)
        for (item, mapped) in itemMap.enumerated() where mapped >= 0 {
            for j in 0..<d { factors[item * d + j] = bundle.itemFactors[Int(mapped) * d + j] }
        }
        return (factors, d)
    }

    func scoreItems(forUser user: Int, history: InteractionMatrix, into scores: UnsafeMutableBufferPointer<Float>) {
        let d = bundle.dimension
        let mappedUser = Int(userMap[user])
        if let neighbourLists, mappedUser >= 0 {
            let listed = neighbourLists.scores(fromHistory: bundle.history(ofUser: mappedUser).lazy.map { Int($0) })
            for item in 0..<itemCount {
                let mapped = Int(itemMap[item])
                scores[item] = mapped < 0 ? -.infinity
                    : listed[Int32(mapped)] ?? ItemKNNModel.unlistedScore(popularity: bundle.popularity[mapped], mostPopular: mostPopular)
            }
            return
        }
        for item in 0..<itemCount {
            let mapped = Int(itemMap[item])
            if mapped < 0 {
                scores[item] = -.infinity
            } else if d == 0 || mappedUser < 0 {
                scores[item] = bundle.popularity[mapped]
            } else {
                scores[item] = VectorMath.dot(bundle.userFactors.baseAddress! + mappedUser * d,
                                              bundle.itemFactors.baseAddress! + mapped * d, d)
            }
        }
    }
}

