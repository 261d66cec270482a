import CoreMetrics
public import DuetCore
import DuetKernels
public import DuetSimilarity
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

/// Which similarity explains a list (`explain=true`): the answering bundle's own, or a published index's.
public enum ExplanationSource: Sendable, Equatable {
    case bundle
    case index(String)
}

/// Why an item is recommended: the item from the user's history most similar to it.
public struct Because: Sendable, Hashable, Codable {
    public var id: String
    public var title: String?
    public var similarity: Float
}

/// The `because` of every item in a list, and the index whose similarity chose them.
public struct Explanation: Sendable {
    public var index: String
    /// The published artefact and its generation, when a named index explained.
    public var artefact: String?
    public var generation: Int?
    /// One per listed item; nil when nothing in the history is similar to it.
    public var because: [Because?]
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
    public var explanation: Explanation?
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
        if let explanation {
            json.key("explanation"); json.beginObject()
            json.key("index"); json.string(explanation.index)
            if let artefact = explanation.artefact { json.key("artefact"); json.string(artefact) }
            if let generation = explanation.generation { json.key("generation"); json.int(generation) }
            json.endObject()
        }
        json.key("items"); json.beginArray()
        for (position, row) in ranked.enumerated() {
            source.fragments.write(item: Int(row.item), score: row.score, because: explanation?.because[position], into: &json)
        }
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

/// An answer from a named similarity index: which artefact and generation answered.
public struct NamedSimilarItemsResponse: Codable, Sendable {
    public var item: String
    public var index: String
    public var artefact: String
    public var generation: Int
    public var filters: [String]
    public var items: [RecommendedItem]
}

/// Why a request could not be answered; routes map these to HTTP statuses.
public enum ServeError: Error, Equatable, CustomStringConvertible {
    case noProductionBundle
    case unknownItem(String)
    case unknownIndex(String, available: [String])
    /// A part of a published index read after it went live failed its checksum: it is withdrawn.
    case indexFailedVerification(String, reason: String)
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
        case let .indexFailedVerification(name, reason): "index '\(name)' failed verification and is withdrawn (\(reason)); publish or roll back a good artefact"
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

    /// Most history items a list is scored from or explained with: the recent ones first.
    static let historyLimit = 500

    public func recommend(user: String, n: Int, exclude: [String], context: String?,
                          explain: ExplanationSource? = nil) throws -> RecommendationResponse {
        let state = store.current
        guard let production = state.production else { throw ServeError.noProductionBundle }
        // Checked before anything is logged: a request for an unknown index is refused whole.
        if case let .index(name)? = explain, state.indexes[name] == nil {
            throw ServeError.unknownIndex(name, available: state.indexes.keys.sorted())
        }
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
        let explanation = explain.map { self.explain(ranked, user: user, in: bundle, with: $0, state: state) }
        let response = RecommendationResponse(user: user, requestId: requestID, generation: state.generation, experiments: arms,
                                              fallback: fallback, index: indexName, explanation: explanation, ranked: ranked, source: bundle)
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

    /// The user's history as the bundle's rows: what Serve saw them consume lately, then what the
    /// bundle was trained on; at most `historyLimit`.
    func historyRows(of user: String, in bundle: ModelBundle) -> [Int] {
        var rows = recent.items(of: user).reversed().compactMap(bundle.itemIndex(of:))
        if let userIndex = bundle.userIndex(of: user) { rows += bundle.history(ofUser: userIndex).lazy.map { Int($0) } }
        return Array(rows.prefix(Self.historyLimit))
    }

    /// Top N for a user from one bundle, with consumed, excluded and unavailable items filtered.
    func rank(user: String, n: Int, exclude: [String], in loaded: LoadedBundle) -> ([RankedItem], String?, String) {
        let bundle = loaded.bundle
        let userIndex = bundle.userIndex(of: user)
        let recentItems = recent.items(of: user)
        // A known user's precomputed list already leaves out unavailable items and the training
        // history; only what changes per request is dropped here.
        if let lists = loaded.precomputedLists, let userIndex, bundle.history(ofUser: userIndex).count >= minimumHistory {
            var dropped: [Int] = []
            for id in exclude { if let item = bundle.itemIndex(of: id) { dropped.append(item) } }
            for id in recentItems { if let item = bundle.itemIndex(of: id) { dropped.append(item) } }
            if let ranked = lists.top(n, ofUser: userIndex, dropping: dropped) { return (ranked, nil, "exact") }
        }
        var exclusions = loaded.baseExclusions
        for id in exclude { if let item = bundle.itemIndex(of: id) { exclusions.insert(item) } }
        for id in recentItems { if let item = bundle.itemIndex(of: id) { exclusions.insert(item) } }
        let historyCount = userIndex.map { bundle.history(ofUser: $0).count } ?? 0
        if let userIndex { for item in bundle.history(ofUser: userIndex) { exclusions.insert(Int(item)) } }

        func popular(_ count: Int, after chosen: [RankedItem] = []) -> [RankedItem] {
            var items: [RankedItem] = []
            let taken = Set(chosen.map(\.item))
            for item in loaded.popularItems where !exclusions.contains(Int(item)) && !taken.contains(item) {
                if items.count == count { break }
                items.append(RankedItem(item: item, score: bundle.popularity[Int(item)]))
            }
            return items
        }
        if let knn = loaded.itemNeighbours {
            // Item-kNN scores from the history itself, so what a new listener just played is enough.
            let history = historyRows(of: user, in: bundle)
            guard !history.isEmpty, history.count >= minimumHistory else {
                return (popular(n), userIndex == nil && history.isEmpty ? "unknown-user" : "short-history", "popularity")
            }
            var items = knn.lists.recommend(history: history, k: n, filter: exclusions).map { RankedItem(item: Int32($0.id), score: $0.score) }
            // Lists reach only items near the history; the rest of the list is the popular ones, as offline.
            if items.count < n { items += popular(n - items.count, after: items) }
            return (items, nil, knn.name)
        }
        guard let userIndex, bundle.dimension > 0, historyCount >= minimumHistory else {
            let reason = userIndex == nil ? "unknown-user" : (bundle.dimension == 0 ? "popularity-model" : "short-history")
            return (popular(n), reason, "popularity")
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

    /// Each listed item's `because`: the history item most similar to it under the chosen similarity.
    /// Costs one similarity per history item per listed item, timed in `duet_explanation_seconds`.
    func explain(_ ranked: [RankedItem], user: String, in loaded: LoadedBundle, with source: ExplanationSource,
                 state: ServingState) -> Explanation {
        let started = ContinuousClock.now
        defer { metrics.explanationDuration.record(since: started) }
        let bundle = loaded.bundle
        let history = historyRows(of: user, in: bundle)
        func because(_ id: String, _ similarity: Float, catalog: [String: CatalogItem]) -> Because {
            Because(id: id, title: catalog[id]?.title, similarity: similarity)
        }
        switch source {
        case .bundle:
            guard let name = loaded.similarity.defaultName, let similarity = loaded.similarity.indexes[name] else {
                return Explanation(index: "none", because: ranked.map { _ in nil })
            }
            return Explanation(index: name, because: ranked.map { row in
                similarity.mostSimilar(to: Int(row.item), among: history).map { because(bundle.itemIDs[$0.id], $0.score, catalog: bundle.catalog) }
            })
        case let .index(name):
            // Checked by `recommend` against the same state.
            let served = state.indexes[name]!
            let artefact = served.artefact
            // An index that failed verification explains nothing; the recommendations stand.
            guard artefact.integrityFailure == nil else {
                return Explanation(index: name, artefact: artefact.id, generation: served.generation, because: ranked.map { _ in nil })
            }
            let rows = history.compactMap { artefact.row(of: bundle.itemIDs[$0]) }
            return Explanation(index: name, artefact: artefact.id, generation: served.generation, because: ranked.map { row in
                artefact.row(of: bundle.itemIDs[Int(row.item)])
                    .flatMap { artefact.similarity.mostSimilar(to: $0, among: rows) }
                    .map { because(artefact.itemIDs[$0.id], $0.score, catalog: artefact.catalog) }
            })
        }
    }

    /// Similar items from the production bundle's own indexes: the route that predates named indexes.
    public func similar(item id: String, n: Int, index requested: String?, filters: [ItemPredicate] = [],
                        exclude: [String] = []) throws -> SimilarItemsResponse {
        let state = store.current
        guard let loaded = state.production else { throw ServeError.noProductionBundle }
        let bundle = loaded.bundle
        guard let item = bundle.itemIndex(of: id) else { throw ServeError.unknownItem(id) }
        guard let answer = loaded.similarity.similar(to: item, n: n, index: requested, predicates: filters,
                                                     excluding: exclude.compactMap(bundle.itemIndex(of:))) else {
            throw ServeError.unknownIndex(requested ?? "default", available: loaded.similarity.names)
        }
        return SimilarItemsResponse(item: id, bundle: bundle.id, generation: state.generation, index: answer.name,
                                    items: answer.items.map { loaded.describe($0.id, score: $0.score) })
    }

    /// Similar items from a similarity index published under its own name, on its own generation.
    public func similar(item id: String, inIndex name: String, n: Int, filters: [ItemPredicate] = [],
                        exclude: [String] = []) throws -> NamedSimilarItemsResponse {
        let state = store.current
        guard let served = state.indexes[name] else { throw ServeError.unknownIndex(name, available: state.indexes.keys.sorted()) }
        let artefact = served.artefact
        guard let neighbours = artefact.similar(to: id, n: n, predicates: filters, excluding: exclude) else {
            throw ServeError.unknownItem(id)
        }
        // A chunk that failed was never read, but the answer may lack what it held: no answer at all.
        if let failure = artefact.integrityFailure { throw ServeError.indexFailedVerification(name, reason: "\(failure)") }
        return NamedSimilarItemsResponse(item: id, index: name, artefact: artefact.id, generation: served.generation,
                                         filters: filters.map(\.description), items: neighbours.map { served.describe($0) })
    }

    /// Anything the user just played, skipped or saved is not worth recommending again right away.
    func recordConsumption(_ events: [FeedbackEvent]) {
        for event in events { recent.record(user: event.user, item: event.item) }
    }
}
