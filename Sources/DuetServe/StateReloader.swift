import CoreMetrics
public import DuetCore
import DuetSimilarity
#if canImport(Glibc)
import Glibc
#endif

public import Foundation
public import Logging
import NIOConcurrencyHelpers
public import ServiceLifecycle
import Synchronization

/// Polls the registry's serving version (one cheap query) and, when it changes, builds the next
/// state off the request path: load and verify new bundles, warm them, then swap in one step.
/// A production bundle that fails to load is refused: serving stays on the old state.
public final class StateReloader: Service, Sendable {
    let source: any ServingSource
    let bundles: URL
    /// Where published similarity index artefacts live (a content-addressed folder each).
    let indexes: URL
    let store: ServingStateStore
    let interval: Duration
    let storeTimeout: Duration
    /// How each loaded factor bundle precomputes its known users' lists.
    let lists: ListPrecomputation
    let metrics: ServeMetrics
    let logger: Logger
    /// A version whose production bundle was refused is not retried until the registry changes again.
    private let refusedVersion = Mutex<Int?>(nil)
    /// Index artefacts withdrawn after a chunk read in while serving failed its checksum: loading
    /// one again would only put it back live until the same chunk is read.
    private let withdrawnArtefacts = Mutex<Set<String>>([])

    public init(source: any ServingSource, bundles: URL, indexes: URL? = nil, store: ServingStateStore, interval: Duration = .seconds(1),
                storeTimeout: Duration = .seconds(10), lists: ListPrecomputation = .init(), metrics: ServeMetrics, logger: Logger) {
        self.lists = lists
        self.source = source
        self.bundles = bundles
        self.indexes = indexes ?? bundles.deletingLastPathComponent().appendingPathComponent("indexes", isDirectory: true)
        self.store = store
        self.interval = interval
        self.storeTimeout = storeTimeout
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await reloadIfChanged()
            try? await Task.sleep(for: interval)
        }
    }

    /// One poll. Returns true when a new state was swapped in.
    @discardableResult
    public func reloadIfChanged() async -> Bool {
        withdrawFailedIndexes()
        do {
            let version = try await FirstAnswer.within(storeTimeout, what: "the registry") { [source] in try await source.servingVersion() }
            guard version != store.current.version, version != refusedVersion.withLock({ $0 }) else { return false }
            let configuration = try await FirstAnswer.within(storeTimeout, what: "the registry") { [source] in try await source.servingConfiguration() }
            return try await apply(configuration)
        } catch {
            logger.error("registry poll failed; serving stays on the current state: \(error)")
            return false
        }
    }

    /// A swap this long after the activation time counts as late (the poll, load and verify did not fit in the delay).
    static let lateTolerance = 5

    /// Runs `action` at a wall-clock time, on a thread of its own: a wait on the cooperative pool is
    /// woken behind whatever request work fills the pool, so a busy replica would swap late. Replicas
    /// on one clock then switch within a millisecond or two. A time over a minute away (clock skew, or
    /// a bad row) is waited for only a minute; cancellation ends the wait within 50 ms.
    package static func perform<Result: Sendable>(atEpochMillis target: EpochMillis,
                                                  _ action: @escaping @Sendable () -> Result) async -> Result {
        let cancelled = NIOLockedValueBox(false)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result, Never>) in
                let waiter = Thread {
                    // Real-time priority where the process may take it (root, CAP_SYS_NICE): on a saturated
                    // machine an ordinary thread can wake 10 ms late. Without it the wait still works.
                    var priority = sched_param()
                    priority.sched_priority = 1
                    _ = pthread_setschedparam(pthread_self(), Int32(SCHED_FIFO), &priority)
                    let deadline = min(target, Date().epochMillis + 60_000)
                    while !cancelled.withLockedValue({ $0 }), Date().epochMillis < deadline {
                        // Naps of at most 50 ms, so a cancellation is seen soon.
                        let remainingMicros = Double(deadline) * 1_000 - Date().timeIntervalSince1970 * 1_000_000
                        usleep(UInt32(min(max(remainingMicros, 1), 50_000)))
                    }
                    continuation.resume(returning: action())
                }
                waiter.name = "duet-cutover"
                waiter.start()
            }
        } onCancel: {
            cancelled.withLockedValue { $0 = true }
        }
    }

    /// Takes out of service every index whose background or on-touch verification found a bad
    /// chunk. Nothing it answered came from a bad chunk; from now on its name answers 404 until
    /// the Lab publishes or rolls back to a good artefact.
    func withdrawFailedIndexes() {
        let state = store.current
        let failed = state.indexes.filter { $0.value.artefact.integrityFailure != nil }
        guard !failed.isEmpty else { return }
        for (name, served) in failed {
            metrics.indexRefusals.increment()
            withdrawnArtefacts.withLock { _ = $0.insert(served.artefact.id) }
            logger.error("index '\(name)' artefact \(served.artefact.id.prefix(12)) withdrawn: \(served.artefact.integrityFailure!)")
        }
        store.swap(to: state.with(indexes: state.indexes.filter { failed[$0.key] == nil }))
    }

    /// Each published name on its own: an artefact already held is reused, a new one is loaded and
    /// verified, and one that fails keeps its name on the artefact it had (or leaves the name out),
    /// without holding back the other names or the recommender.
    ///
    /// A graph with chunk digests is read in a chunk at a time, each verified before use. A name
    /// served for the first time answers at once and the rest is verified in the background; a
    /// name already answering keeps its artefact until the new one is verified whole, so a corrupt
    /// republish never goes live.
    func loadIndexes(_ published: [PublishedIndex], current: [String: ServedIndex]) -> [String: ServedIndex] {
        let held = Dictionary(current.values.map { ($0.artefact.id, $0.artefact) }, uniquingKeysWith: { first, _ in first })
        var next: [String: ServedIndex] = [:]
        for entry in published {
            if let artefact = held[entry.artefact] {
                next[entry.name] = ServedIndex(artefact: artefact, generation: entry.generation)
                continue
            }
            do {
                try Identifier.validateFileSafe(entry.artefact, field: "index id")
                if withdrawnArtefacts.withLock({ $0.contains(entry.artefact) }) {
                    throw DuetError.refused("artefact \(entry.artefact.prefix(12)) was withdrawn after a chunk failed verification")
                }
                let started = ContinuousClock.now
                let artefact = try SimilarityIndexArtefact(folder: indexes.appendingPathComponent(entry.artefact), loading: .verifiedOnTouch)
                guard artefact.name == entry.name else {
                    throw DuetError.refused("artefact \(entry.artefact.prefix(12)) was built as '\(artefact.name)', not '\(entry.name)'")
                }
                let label = "index '\(entry.name)' artefact \(entry.artefact.prefix(12))"
                if let pages = artefact.pages, current[entry.name] == nil {
                    logger.info("\(label) answering after \((ContinuousClock.now - started).wholeMilliseconds) ms (\(pages.verifiedChunks) of \(pages.chunkCount) graph chunks verified); the rest is verified in the background")
                    artefact.verifyRemainingInBackground { [logger] failure in
                        if let failure {
                            logger.error("\(label) failed verification in the background: \(failure); it is withdrawn at the next poll")
                        } else {
                            logger.info("\(label) verified whole in the background, \((ContinuousClock.now - started).wholeMilliseconds) ms after loading began")
                        }
                    }
                } else {
                    try artefact.verifyRemaining()
                    logger.info("\(label) loaded and verified in \((ContinuousClock.now - started).wholeMilliseconds) ms")
                }
                next[entry.name] = ServedIndex(artefact: artefact, generation: entry.generation)
            } catch {
                metrics.indexRefusals.increment()
                if let kept = current[entry.name] {
                    next[entry.name] = kept
                    logger.error("index '\(entry.name)' artefact \(entry.artefact.prefix(12)) refused: \(error); still serving \(kept.artefact.id.prefix(12)) (generation \(kept.generation))")
                } else {
                    logger.error("index '\(entry.name)' artefact \(entry.artefact.prefix(12)) refused: \(error); the name is not served")
                }
            }
        }
        return next
    }

    func apply(_ configuration: ServingConfiguration) async throws -> Bool {
        let current = store.current
        let known = current.loadedBundles
        func load(_ id: String) -> Result<LoadedBundle, LoadedExperiment.ArmUnavailable> {
            if let bundle = known[id] { return .success(bundle) }
            do {
                // The registry names the folder; an id that could leave `bundles/` is never opened.
                try Identifier.validateFileSafe(id, field: "bundle id")
                let started = ContinuousClock.now
                let loaded = try LoadedBundle(folder: bundles.appendingPathComponent(id), lists: lists)
                logger.info("bundle \(id.prefix(12)) loaded and verified in \((ContinuousClock.now - started).wholeMilliseconds) ms; lists precomputed for \(loaded.precomputedUsers) users in \(loaded.precomputeTime.wholeMilliseconds) ms")
                return .success(loaded)
            } catch {
                logger.error("bundle \(id.prefix(12)) refused: \(error)")
                return .failure(.init(reason: "bundle-unavailable"))
            }
        }
        var production: LoadedBundle?
        if let id = configuration.production {
            switch load(id) {
            case let .success(bundle):
                production = bundle
            case .failure:
                metrics.swapRefusals.increment()
                refusedVersion.withLock { $0 = configuration.version }
                // Keep serving what we have; try again at the next change.
                guard current.production != nil else { return false }
                logger.error("production bundle \(id.prefix(12)) refused; still serving \(current.production!.id.prefix(12))")
                return false
            }
        }
        let experiments = configuration.experiments.map { record in
            var arms: [String: Result<LoadedBundle, LoadedExperiment.ArmUnavailable>] = [:]
            // A holdout's second arm is production, whatever it is: only the pinned bundle is loaded.
            for arm in record.spec.isHoldout ? [record.spec.control] : record.spec.arms { arms[arm.name] = load(arm.bundleID) }
            let counters = Dictionary(uniqueKeysWithValues: record.spec.arms.map {
                ($0.name, metrics.exposureCounter(experiment: record.spec.id, phase: record.phase, arm: $0.name))
            })
            let ranges = Assignment.bucketRanges(count: record.spec.arms.count, weights: record.spec.arms.map(\.weight))
            let total = ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) }
            metrics.recordArmShares(experiment: record.spec.id, phase: record.phase,
                                    shares: zip(record.spec.arms, ranges).map { ($0.name, total > 0 ? ($1.upperBound - $1.lowerBound) / total : 0) })
            return LoadedExperiment(spec: record.spec, phase: record.phase, arms: arms, exposureCounters: counters)
        }
        let indexes = loadIndexes(configuration.indexes, current: current.indexes)
        let swapNow = { @Sendable [store, production] () -> ServingState in
            let next = ServingState(version: configuration.version, generation: configuration.productionGeneration,
                                    production: production, experiments: experiments, activateAt: configuration.activateAt,
                                    activatedAt: Date().epochMillis, indexes: indexes)
            store.swap(to: next)
            return next
        }
        // Loaded and verified ahead; every replica swaps at the registry's activation time. At start
        // (nothing served yet) there is nothing to keep in step with, so the state goes live at once.
        let next: ServingState
        if let activateAt = configuration.activateAt, current.version >= 0 {
            store.hold(version: configuration.version, until: activateAt)
            next = await Self.perform(atEpochMillis: activateAt, swapNow)
        } else {
            next = swapNow()
        }
        if current.version >= 0, let late = next.lateByMillis {
            metrics.cutoverLateness.record(Double(late) / 1_000)
            if late > Self.lateTolerance {
                metrics.cutoversLate.increment()
                logger.warning("version \(configuration.version) swapped in \(late) ms after its activation time: this replica was not ready in time and served the old state until it was")
            }
        }
        metrics.swaps.increment()
        metrics.generation.record(configuration.productionGeneration)
        metrics.productionUsers.record(production?.bundle.userCount ?? 0)
        metrics.precomputedUsers.record(production?.precomputedUsers ?? 0)
        for (name, served) in indexes { metrics.recordIndexGeneration(name, served.generation) }
        logger.info("serving generation \(configuration.productionGeneration) (\(production?.id.prefix(12) ?? "none")), \(experiments.count) running experiment(s)")
        return true
    }
}
