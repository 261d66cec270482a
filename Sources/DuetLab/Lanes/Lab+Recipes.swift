public import DuetCore
public import DuetStore
import DuetTraining
public import Foundation

extension TrainingAlgorithm {
    /// The algorithm a recipe names, with its hyperparameters; unknown keys are refused, not ignored.
    public init(recipe: Recipe, threads: Int) throws {
        let known: Set<String>
        let p = recipe.hyperparameters
        func int(_ key: String, _ fallback: Int) throws -> Int {
            guard let value = p[key] else { return fallback }
            guard value == value.rounded(), value >= 0, value < 1e9 else {
                throw DuetError.invalidValue(field: "hyperparameter", reason: "'\(key)' must be a whole number ≥ 0, got \(value)")
            }
            return Int(value)
        }
        switch recipe.algorithm {
        case "als":
            known = ["factors", "regularization", "alpha", "iterations", "cgSteps", "seed"]
            var c = ALSConfiguration()
            c.factors = try int("factors", c.factors)
            c.iterations = try int("iterations", c.iterations)
            c.cgSteps = try int("cgSteps", c.cgSteps)
            c.seed = UInt64(try int("seed", Int(c.seed)))
            c.regularization = Float(p["regularization"] ?? Double(c.regularization))
            c.alpha = Float(p["alpha"] ?? Double(c.alpha))
            c.threads = threads
            self = .als(c)
        case "bpr":
            known = ["factors", "learningRate", "regularization", "iterations", "seed"]
            var c = BPRConfiguration()
            c.factors = try int("factors", c.factors)
            c.iterations = try int("iterations", c.iterations)
            c.seed = UInt64(try int("seed", Int(c.seed)))
            c.learningRate = Float(p["learningRate"] ?? Double(c.learningRate))
            c.regularization = Float(p["regularization"] ?? Double(c.regularization))
            c.threads = threads
            self = .bpr(c)
        case ItemKNN.kind:
            known = ["neighbours", "shrinkage", "minimumSupport"]
            var c = ItemKNNConfiguration()
            c.neighbours = try int("neighbours", c.neighbours)
            c.minimumSupport = try int("minimumSupport", c.minimumSupport)
            c.shrinkage = Float(p["shrinkage"] ?? Double(c.shrinkage))
            c.threads = threads
            try c.validate()
            self = .itemKNN(c)
        default:
            known = []
            self = .popularity
        }
        if let unknown = p.keys.sorted().first(where: { !known.contains($0) }) {
            throw DuetError.invalidValue(field: "hyperparameter", reason: "'\(unknown)' is not a setting of \(recipe.algorithm) (known: \(known.sorted().joined(separator: ", ")))")
        }
    }
}

/// What a recipe's freeze left out of the training data, and why: feedback on lists that the
/// production bundle of the moment did not serve, keyed "experiment/arm" (or the bundle).
public struct FeedbackSeparation: Codable, Sendable, Hashable {
    public var learnsFrom: FeedbackSource
    /// Events left out, by the experiment arm (or bundle) that served the list they follow.
    public var excluded: [String: Int]
    public var kept: Int

    public var excludedTotal: Int { excluded.values.reduce(0, +) }
}

/// One bundle in a lineage: the model, the recipe that made it and its snapshot.
public struct LineageStep: Sendable {
    public var model: ModelRecord
    public var recipe: Recipe?
    public var snapshot: SnapshotInfo?
    public var separation: FeedbackSeparation?
}

extension Lab {
    /// Stores a recipe as its name's next version (an unchanged one keeps its version).
    @discardableResult
    public func saveRecipe(_ recipe: Recipe) async throws -> Recipe {
        try recipe.validate()
        _ = try TrainingAlgorithm(recipe: recipe, threads: 1)
        if let metric = recipe.refresh?.metric, !RankingMetrics.names.contains(metric) {
            throw DuetError.invalidValue(field: "refresh metric", reason: "'\(metric)' is not one of \(RankingMetrics.names.joined(separator: ", "))")
        }
        return try await registry.add(recipe)
    }

    /// The recipe a reference names: "name" (newest version) or "name@3".
    public func recipe(_ reference: String) async throws -> Recipe {
        let (name, version) = Recipe.parseReference(reference)
        guard let recipe = try await registry.recipe(name, version: version) else { throw DuetError.notFound(kind: "recipe", id: reference) }
        return recipe
    }

    /// Freezes the recipe's window of the event log, up to `until`. Under `learnsFrom: production`,
    /// feedback that follows a list production did not serve is left out, and counted by why.
    public func freeze(for recipe: Recipe, eventLog log: any EventLog, until: EpochMillis) async throws -> (SnapshotInfo, FeedbackSeparation) {
        let from = recipe.windowDays.map { until - EpochMillis($0) * 86_400_000 }
        let kinds = recipe.kinds.map { Set($0.map { EventKind(rawValue: $0) }) }
        let mark = try await log.highWaterMark()
        var served: [String: String] = [:]
        if recipe.learnsFrom == .production {
            let history = try await registry.history()
            func production(at time: EpochMillis) -> String? { history.last { $0.changedAt <= time }?.to }
            var cursor: Int64 = 0
            let filter = EventFilter(from: from, until: until, maxSequence: mark.exposures)
            while true {
                let page = try await log.exposures(after: cursor, matching: filter, limit: 50_000)
                guard let last = page.last else { break }
                for stored in page {
                    let exposure = stored.exposure
                    guard exposure.bundleID != production(at: exposure.timestamp) else { continue }
                    // Holdouts come first in an exposure; the arm that chose the bundle is the last one served.
                    let arm = exposure.experiments.last { $0.served != "none" }
                    served[exposure.requestID] = arm.map { "\($0.experimentID)/\($0.served)" } ?? "bundle \(exposure.bundleID.prefix(12))"
                }
                cursor = last.sequence
            }
        }
        let builder = SnapshotBuilder()
        var tally = ReadTally()
        var excluded: [String: Int] = [:]
        var kept = 0
        try await log.forEachEvent(matching: EventFilter(from: from, until: until, kinds: kinds, maxSequence: mark.events)) { page in
            for stored in page where kinds != nil || !stored.event.kind.isNegative {
                let event = stored.event
                if let request = event.requestID, let reason = served[request] {
                    excluded[reason, default: 0] += 1
                    continue
                }
                kept += 1
                builder.add(user: event.user, item: event.item, weight: event.weight, timestamp: event.timestamp)
            }
            tally.rowsRead += page.count
        }
        guard builder.rowCount > 0 else {
            throw DuetError.emptyInput(path: "event log", reason: "no events in recipe \(recipe.reference)'s window (up to sequence \(mark.events))")
        }
        let separation = FeedbackSeparation(learnsFrom: recipe.learnsFrom, excluded: excluded, kept: kept)
        var source = "event log up to #\(mark.events) for recipe \(recipe.reference)"
        if let from { source += " from \(TimestampParser.iso8601String(from))" }
        source += " until \(TimestampParser.iso8601String(until))"
        let info = try snapshots.freeze(builder, source: source, format: "events", kinds: kinds, tally: tally,
                                        catalog: try HomeCatalog(home: home).load())
        try snapshots.recordSeparation(separation, of: info.hash)
        return (info, separation)
    }

    /// Trains the recipe on a split of a snapshot and registers the bundle with its recipe, owner and parent.
    public func train(recipe: Recipe, snapshot: String, split: String, parent: String?, name: String? = nil,
                      threads: Int = ProcessInfo.processInfo.activeProcessorCount) async throws -> String {
        let algorithm = try TrainingAlgorithm(recipe: recipe, threads: threads)
        return try await train(snapshot: snapshot, split: split, algorithm: algorithm, name: name ?? recipe.name, register: true,
                               parent: parent, owner: recipe.owner, recipe: recipe.reference).bundleID
    }

    /// The bundle and its ancestors, newest first: each with its recipe and snapshot.
    public func lineage(_ reference: String) async throws -> [LineageStep] {
        var steps: [LineageStep] = []
        var next: String? = try await resolveBundle(reference)
        var seen = Set<String>()
        while let id = next, seen.insert(id).inserted {
            guard let model = try await registry.model(id) else {
                if steps.isEmpty { throw DuetError.notFound(kind: "registered model", id: id) }
                break
            }
            var recipe: Recipe?
            if let reference = model.recipe { recipe = try? await self.recipe(reference) }
            steps.append(LineageStep(model: model, recipe: recipe, snapshot: try? snapshots.info(model.snapshot),
                                     separation: snapshots.separation(of: model.snapshot)))
            next = model.parent
        }
        return steps
    }
}

extension SnapshotStore {
    func separationPath(of hash: String) -> URL { folder.appendingPathComponent("\(hash).separation.json") }

    /// Beside the snapshot: what its freeze left out. The same bytes can come from two freezes; the first record stays.
    func recordSeparation(_ separation: FeedbackSeparation, of hash: String) throws {
        let path = separationPath(of: hash)
        guard !FileManager.default.fileExists(atPath: path.path) else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(separation).write(to: path, options: .atomic)
    }

    public func separation(of hash: String) -> FeedbackSeparation? {
        guard let data = try? Data(contentsOf: separationPath(of: hash)) else { return nil }
        return try? JSONDecoder().decode(FeedbackSeparation.self, from: data)
    }
}
