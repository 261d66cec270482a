public import DuetCore
public import DuetSimilarity
import CoreMetrics

import NIOConcurrencyHelpers

/// A running experiment as Serve holds it: the spec of the current phase and each arm's bundle,
/// or why that arm's bundle could not be loaded (its users then get control).
public struct LoadedExperiment: Sendable {
    public let spec: ExperimentSpec
    public let phase: Int
    let arms: [String: Result<LoadedBundle, ArmUnavailable>]
    /// Each arm's exposure counter, made when the experiment is loaded so a request only increments.
    let exposureCounters: [String: Counter]

    struct ArmUnavailable: Error, Sendable {
        let reason: String
    }
}

/// A similarity index Serve holds under its published name, with that name's generation.
public struct ServedIndex: Sendable {
    public let artefact: SimilarityIndexArtefact
    public let generation: Int

    func describe(_ neighbour: Neighbour) -> RecommendedItem {
        let id = artefact.itemIDs[neighbour.id]
        let entry = artefact.catalog[id]
        return RecommendedItem(id: id, score: neighbour.score, title: entry?.title, artist: entry?.artist)
    }
}

/// Everything one request needs, immutable: built off the request path and swapped in whole.
/// In-flight requests keep the state they started with.
public final class ServingState: Sendable {
    public let version: Int
    public let generation: Int
    public let production: LoadedBundle?
    public let experiments: [LoadedExperiment]
    /// The activation time the registry set for this version, and when this replica swapped it in (epoch ms).
    public let activateAt: EpochMillis?
    public let activatedAt: EpochMillis?
    /// Published similarity indexes by name; each swaps on its own generation.
    public let indexes: [String: ServedIndex]

    public init(version: Int, generation: Int, production: LoadedBundle?, experiments: [LoadedExperiment],
                activateAt: EpochMillis? = nil, activatedAt: EpochMillis? = nil, indexes: [String: ServedIndex] = [:]) {
        self.indexes = indexes
        self.version = version
        self.generation = generation
        self.production = production
        self.experiments = experiments
        self.activateAt = activateAt
        self.activatedAt = activatedAt
    }

    /// Milliseconds between the activation time and the swap; nil without an activation time.
    public var lateByMillis: Int? {
        guard let activateAt, let activatedAt else { return nil }
        return Int(max(0, activatedAt - activateAt))
    }

    /// This state with other indexes: everything else, the version included, stays.
    func with(indexes: [String: ServedIndex]) -> ServingState {
        ServingState(version: version, generation: generation, production: production, experiments: experiments,
                     activateAt: activateAt, activatedAt: activatedAt, indexes: indexes)
    }

    public static let empty = ServingState(version: -1, generation: 0, production: nil, experiments: [])

    /// Loaded bundles by id, so the next state reuses them instead of loading again.
    var loadedBundles: [String: LoadedBundle] {
        var bundles: [String: LoadedBundle] = [:]
        if let production { bundles[production.id] = production }
        for experiment in experiments {
            for case let .success(bundle) in experiment.arms.values { bundles[bundle.id] = bundle }
        }
        return bundles
    }
}

/// The one place the current state lives. A read is a single lock-protected pointer load
/// (NIOLockedValueBox measured fastest here); the state itself is immutable.
public final class ServingStateStore: Sendable {
    private let box = NIOLockedValueBox(ServingState.empty)

    public init() {}

    private let waiting = NIOLockedValueBox<(version: Int, activateAt: EpochMillis)?>(nil)

    public var current: ServingState { box.withLockedValue { $0 } }

    /// A verified state held back until its activation time.
    public var pending: (version: Int, activateAt: EpochMillis)? { waiting.withLockedValue { $0 } }

    func swap(to state: ServingState) {
        box.withLockedValue { $0 = state }
        waiting.withLockedValue { $0 = nil }
    }

    func hold(version: Int, until activateAt: EpochMillis) { waiting.withLockedValue { $0 = (version, activateAt) } }
}
