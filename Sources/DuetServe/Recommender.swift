import CoreMetrics
public import DuetCore
import DuetKernels
import DuetSimilarity
import Foundation

public struct RecommendedItem: Codable, Sendable, Hashable {
    public var id: String
    public var score: Float
    public var title: String?
    public var artist: String?
}

/// One ranked row of the bundle that answered.
struct RankedItem: Sendable {
    var item: Int32
    var score: Float
}

public struct RecommendationResponse: Sendable {
    public var user: String
    public var requestId: String
    public var generation: Int
    public var experiments: [ExperimentArmExposure]
    /// Set when the list came from a fallback, e.g. "unknown-user".
    public var fallback: String?
    /// The index that answered: an index name, "exact" or "popularity".
    public var index: String
    let ranked: [RankedItem]
    let source: LoadedBundle

    /// The bundle that produced the list.
    public var bundle: String { source.id }
    public var itemIDs: [String] { ranked.map { source.bundle.itemIDs[Int($0.item)] } }
    public var items: [RecommendedItem] { ranked.map { source.describe(Int($0.item), score: $0.score) } }

    /// Written by hand from the bundle's pre-rendered item JSON: this runs on every request.
    public func jsonBytes() -> [UInt8] {
        var json = JSONWriter(capacity: 256 + ranked.count * 96)
        json.beginObject()
        json.key("user"); json.string(user)
        json.key("requestId"); json.string(requestId)
        json.key("bundle"); json.string(source.id)
        json.key("generation"); json.int(generation)
        json.key("index"); json.string(index)
        if let fallback { json.key("fallback"); json.string(fallback) }
        json.key("items"); json.beginArray()
        for row in ranked { source.fragments.write(item: Int(row.item), score: row.score, into: &json) }
        json.endArray()
        json.key("experiments"); json.beginArray()
        for arm in experiments {
            json.beginObject()
            json.key("experimentId"); json.string(arm.experimentID)
            json.key("phase"); json.int(arm.phase)
            json.key("assigned"); json.string(arm.assigned)
            json.key("served"); json.string(arm.served)
            if let reason = arm.fallbackReason { json.key("fallbackReason"); json.string(reason) }
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.bytes
    }
}

public struct SimilarItemsResponse: Codable, Sendable {
    public var item: String
    public var bundle: String
    public var generation: Int
    public var index: String
    public var items: [RecommendedItem]
}

/// Why a request could not be answered; routes map these to HTTP statuses.
public enum ServeError: Error, Equatable, CustomStringConvertible {
    case noProductionBundle
    case unknownItem(String)
    case unknownIndex(String, available: [String])
    /// Too many ingest bodies in flight: shed load rather than grow.
    case ingestOverloaded(limit: Int)
    /// The event store failed or did not answer in time; nothing was acknowledged.
    case eventStoreUnavailable(String)
    /// No key, or a key Serve does not know.
    case unauthenticated
    /// A known key without the role the route needs.
    case forbidden(key: String, role: AccessRole)
    /// The key's rate limit is spent.
    case rateLimited(key: String, retryAfter: Int)

    public var description: String {
        switch self {
        case .noProductionBundle: "no production bundle is loaded yet; promote one with `duet lab promote`"
        case let .unknownItem(item): "item '\(item)' is not in the production bundle"
        case let .unknownIndex(name, available): "no index named '\(name)'; this bundle has: \(available.joined(separator: ", "))"
        case let .ingestOverloaded(limit): "ingest is full (at most \(limit) event batches and --max-ingest-bytes of bodies are already being stored); retry shortly"
        case let .eventStoreUnavailable(reason): "the event store is unavailable (\(reason)); nothing was stored, retry shortly"
        case .unauthenticated: "this route needs an API key (Authorization: Bearer … or X-API-Key); none was given, or it is not a key this server knows"
        case let .forbidden(key, role): "key '\(key)' does not hold the '\(role.rawValue)' role this route needs"
        case let .rateLimited(key, retryAfter): "key '\(key)' is over its rate limit; retry in \(retryAfter) s"
        }
    }
}

/// How a user is assigned to an experiment's arms. Serve uses `HashedArmAssigner`, the pure
/// GrowthBook-compatible hash of DuetCore; tests may hand in another to exercise the analysis.
public protocol ArmAssigner: Sendable {
    func arm(for user: String, in spec: ExperimentSpec) -> ExperimentArm?
}

public struct HashedArmAssigner: ArmAssigner {
    public init() {}

    @inline(__always)
    public func arm(for user: String, in spec: ExperimentSpec) -> ExperimentArm? { spec.assignedArm(for: user) }
}

/// The request path: one state load, assignment, retrieval, filters, top N, exposure.
public final class Recommender: Sendable {
    let store: ServingStateStore
    let exposures: ExposureWriter?
    let shadows: ShadowWriter?
    let recent: RecentHistory
    let metrics: ServeMetrics
    /// Users with fewer training interactions get the popularity list.
    let minimumHistory: Int
    /// Most item rows the exact scan may read for one list before the HNSW index answers instead.
    let annThreshold: Int
    /// HNSW beam width for recommendations; a request for n items searches with at least n.
    let recommendationBeam: Int
    let assigner: any ArmAssigner
    let requestIDs = RequestIDs()

    init(store: ServingStateStore, exposures: ExposureWriter?, shadows: ShadowWriter? = nil, recent: RecentHistory, metrics: ServeMetrics,
         minimumHistory: Int = 1, annThreshold: Int = 20_000, recommendationBeam: Int = ServeSettings.defaultRecommendationBeam,
         assigner: any ArmAssigner = HashedArmAssigner()) {
        self.store = store
        self.exposures = exposures
        self.shadows = shadows
        self.recent = recent
        self.metrics = metrics
        self.minimumHistory = minimumHistory
        self.annThreshold = annThreshold
        self.recommendationBeam = recommendationBeam
        self.assigner = assigner
    }

    public func recommend(user: String, n: Int, exclude: [String], context: String?) throws -> RecommendationResponse {
        let state = store.current
        guard let production = state.production else { throw ServeError.noProductionBundle }
        let (chosen, arms) = choose(for: user, state: state, production: production)
        var bundle = chosen
        var (ranked, fallback, indexName) = rank(user: user, n: n, exclude: exclude, in: bundle)
        if fallback != nil, ranked.isEmpty, bundle !== production {
            bundle = production
            (ranked, fallback, indexName) = rank(user: user, n: n, exclude: exclude, in: production)
        }
        if let fallback { metrics.fallback(fallback) }
        metrics.answered(by: indexName)
        let now = Date().epochMillis
        let requestID = requestIDs.next(milliseconds: now)
        let response = RecommendationResponse(user: user, requestId: requestID, generation: state.generation, experiments: arms,
                                              fallback: fallback, index: indexName, ranked: ranked, source: bundle)
        let shown = response.itemIDs
        exposures?.enqueue(Exposure(requestID: requestID, user: user, timestamp: now, items: shown,
                                    bundleID: bundle.id, experiments: arms, fallback: fallback, context: context))
        if let shadows { shadow(state: state, user: user, n: n, exclude: exclude, requestID: requestID, shown: bundle, items: shown, at: now, into: shadows) }
        return response
    }

    /// Scores each running shadow's candidate for a sampled share of requests and logs the list apart
    /// from exposures. Its list is never returned; a candidate that cannot answer is skipped.
    func shadow(state: ServingState, user: String, n: Int, exclude: [String], requestID: String, shown: LoadedBundle, items: [String],
                at now: EpochMillis, into writer: ShadowWriter) {
        for experiment in state.experiments where experiment.spec.isShadow && experiment.spec.arms.count == 2 {
            let arm = experiment.spec.arms[1]
            guard ShadowExposure.sampled(requestID: requestID, share: arm.weight), case let .success(candidate)? = experiment.arms[arm.name] else { continue }
            let (ranked, _, _) = rank(user: user, n: n, exclude: exclude, in: candidate)
            writer.enqueue(ShadowExposure(requestID: requestID, shadowID: experiment.spec.id, user: user, timestamp: now, shownBundle: shown.id,
                                          shown: items, bundleID: candidate.id, items: ranked.map { candidate.bundle.itemIDs[Int($0.item)] }))
        }
    }

    /// The bundle this user is served and the arms of every running experiment they are in.
    /// An arm whose bundle is unavailable is served as control, and the exposure says why.
    /// Holdouts come first: a held-out user gets the pinned bundle and joins no experiment (so no
    /// launch reaches them); everyone else is recorded in the holdout's second arm and goes on.
    func choose(for user: String, state: ServingState, production: LoadedBundle) -> (LoadedBundle, [ExperimentArmExposure]) {
        var chosen: LoadedBundle?
        var arms: [ExperimentArmExposure] = []
        for holdout in state.experiments where holdout.spec.isHoldout {
            guard let assigned = assigner.arm(for: user, in: holdout.spec) else { continue }
            holdout.exposureCounters[assigned.name]?.increment()
            let pinned = holdout.spec.control
            guard assigned.name == pinned.name else {
                arms.append(ExperimentArmExposure(experimentID: holdout.spec.id, phase: holdout.phase, assigned: assigned.name, served: assigned.name))
                continue
            }
            if case let .success(bundle)? = holdout.arms[pinned.name] {
                arms.append(ExperimentArmExposure(experimentID: holdout.spec.id, phase: holdout.phase, assigned: pinned.name, served: pinned.name))
                return (bundle, arms)
            }
            // The pinned bundle is unavailable: the user gets production, and the exposure says so.
            let reason = "holdout-bundle-unavailable"
            metrics.fallback(reason)
            arms.append(ExperimentArmExposure(experimentID: holdout.spec.id, phase: holdout.phase, assigned: pinned.name,
                                              served: holdout.spec.arms[1].name, fallbackReason: reason))
            return (production, arms)
        }
        for experiment in state.experiments where !experiment.spec.isHoldout && !experiment.spec.isShadow {
            guard let assigned = assigner.arm(for: user, in: experiment.spec) else { continue }
            let control = experiment.spec.control
            var served = assigned.name
            var reason: String?
            var bundle: LoadedBundle?
            switch experiment.arms[assigned.name] {
            case let .success(loaded)?:
                bundle = loaded
            case let .failure(unavailable)?:
                reason = "treatment-\(unavailable.reason)"
            case nil:
                reason = "treatment-bundle-unavailable"
            }
            if bundle == nil {
                served = control.name
                if case let .success(loaded)? = experiment.arms[control.name] { bundle = loaded }
            }
            if let current = chosen, let bundle, current !== bundle {
                // The user is already served by an earlier experiment; namespaces should prevent this.
                served = "none"
                reason = "overlapping-experiment"
            } else if chosen == nil {
                chosen = bundle
            }
            if let reason { metrics.fallback(reason) }
            experiment.exposureCounters[assigned.name]?.increment()
            arms.append(ExperimentArmExposure(experimentID: experiment.spec.id, phase: experiment.phase, assigned: assigned.name,
                                              served: served, fallbackReason: reason))
        }
        return (chosen ?? production, arms)
    }

    /// Top N for a user from one bundle, with consumed, excluded and unavailable items filtered.
    func rank(user: String, n: Int, exclude: [String], in loaded: LoadedBundle) -> ([RankedItem], String?, String) {
        let bundle = loaded.bundle
        let userIndex = bundle.userIndex(of: user)
        let recentItems = recent.items(of: user)
        var exclusions = loaded.baseExclusions
        for id in exclude { if let item = bundle.itemIndex(of: id) { exclusions.insert(item) } }
        for id in recentItems { if let item = bundle.itemIndex(of: id) { exclusions.insert(item) } }
        let historyCount = userIndex.map { bundle.history(ofUser: $0).count } ?? 0
        if let userIndex { for item in bundle.history(ofUser: userIndex) { exclusions.insert(Int(item)) } }

        guard let userIndex, bundle.dimension > 0, historyCount >= minimumHistory else {
            let reason = userIndex == nil ? "unknown-user" : (bundle.dimension == 0 ? "popularity-model" : "short-history")
            var items: [RankedItem] = []
            for item in loaded.popularItems where !exclusions.contains(Int(item)) {
                items.append(RankedItem(item: item, score: bundle.popularity[Int(item)]))
                if items.count == n { break }
            }
            return (items, reason, "popularity")
        }
        let query = bundle.userFactors.baseAddress! + userIndex * bundle.dimension
        // Exact when the length bound proves the list within the scan budget (almost always for
        // factor models); otherwise HNSW, if the bundle has one.
        let ann = loaded.recommendationIndex
        let rowLimit = ann == nil ? Int.max : annThreshold
        if let scan = loaded.itemScan, let exact = scan.search(query, k: n, excluding: exclusions, rowLimit: rowLimit) {
            return (exact.map { RankedItem(item: Int32($0.id), score: $0.score) }, nil, "exact")
        }
        let neighbours: [Neighbour]
        let indexName: String
        if let ann {
            neighbours = ann.index.search(query, k: n, ef: max(n, recommendationBeam), excluding: exclusions)
            indexName = ann.name
        } else {
            neighbours = []
            indexName = "none"
        }
        // Report raw model scores whichever index answered.
        let items = neighbours.map { neighbour in
            RankedItem(item: Int32(neighbour.id),
                       score: VectorMath.dot(query, bundle.itemFactors.baseAddress! + neighbour.id * bundle.dimension, bundle.dimension))
        }
        return (items, nil, indexName)
    }

    public func similar(item id: String, n: Int, index requested: String?) throws -> SimilarItemsResponse {
        let state = store.current
        guard let loaded = state.production else { throw ServeError.noProductionBundle }
        let bundle = loaded.bundle
        guard let item = bundle.itemIndex(of: id) else { throw ServeError.unknownItem(id) }
        var exclusions = loaded.similarExclusions
        exclusions.insert(item)
        let name = requested ?? loaded.defaultSimilarityIndex ?? "exact"
        let neighbours: [Neighbour]
        if let index = loaded.similarityIndexes[name] {
            neighbours = index.search(bundle.itemFactors.baseAddress! + item * bundle.dimension, k: n, ef: max(2 * n, 64), excluding: exclusions)
        } else if name == "exact", let exact = loaded.exactCosine {
            neighbours = exact.search(bundle.itemFactors.baseAddress! + item * bundle.dimension, k: n, excluding: exclusions)
        } else {
            throw ServeError.unknownIndex(name, available: loaded.similarityIndexes.keys.sorted() + (loaded.exactCosine == nil ? [] : ["exact"]))
        }
        return SimilarItemsResponse(item: id, bundle: bundle.id, generation: state.generation, index: name,
                                    items: neighbours.map { loaded.describe($0.id, score: $0.score) })
    }

    /// Anything the user just played, skipped or saved is not worth recommending again right away.
    func recordConsumption(_ events: [FeedbackEvent]) {
        for event in events { recent.record(user: event.user, item: event.item) }
    }
}
