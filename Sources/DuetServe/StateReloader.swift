import CoreMetrics
public import DuetCore

public import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// Polls the registry's serving version (one cheap query) and, when it changes, builds the next
/// state off the request path: load and verify new bundles, warm them, then swap in one step.
/// A production bundle that fails to load is refused: serving stays on the old state.
public final class StateReloader: Service, Sendable {
    let source: any ServingSource
    let bundles: URL
    let store: ServingStateStore
    let interval: Duration
    let storeTimeout: Duration
    let metrics: ServeMetrics
    let logger: Logger
    /// A version whose production bundle was refused is not retried until the registry changes again.
    private let refusedVersion = Mutex<Int?>(nil)

    public init(source: any ServingSource, bundles: URL, store: ServingStateStore, interval: Duration = .seconds(1),
                storeTimeout: Duration = .seconds(10), metrics: ServeMetrics, logger: Logger) {
        self.source = source
        self.bundles = bundles
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

    /// Sleeps to a wall-clock time, spinning only the last 2 ms so replicas on one clock switch within a
    /// millisecond or two. A time over a minute away (clock skew, or a bad row) is waited for only a
    /// minute; cancellation ends the wait at once.
    package static func sleep(untilEpochMillis target: EpochMillis) async {
        let deadline = min(target, Date().epochMillis + 60_000)
        while !Task.isCancelled {
            let remaining = deadline - Date().epochMillis
            if remaining <= 0 { return }
            if remaining > 3 { try? await Task.sleep(for: .milliseconds(remaining - 2)) }
        }
    }

    func apply(_ configuration: ServingConfiguration) async throws -> Bool {
        let current = store.current
        let known = current.loadedBundles
        func load(_ id: String) -> Result<LoadedBundle, LoadedExperiment.ArmUnavailable> {
            if let bundle = known[id] { return .success(bundle) }
            do {
                // The registry names the folder; an id that could leave `bundles/` is never opened.
                try Identifier.validateFileSafe(id, field: "bundle id")
                return .success(try LoadedBundle(folder: bundles.appendingPathComponent(id)))
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
            return LoadedExperiment(spec: record.spec, phase: record.phase, arms: arms, exposureCounters: counters)
        }
        // Loaded and verified ahead; every replica swaps at the registry's activation time. At start
        // (nothing served yet) there is nothing to keep in step with, so the state goes live at once.
        if let activateAt = configuration.activateAt, current.version >= 0 {
            store.hold(version: configuration.version, until: activateAt)
            await Self.sleep(untilEpochMillis: activateAt)
        }
        let next = ServingState(version: configuration.version, generation: configuration.productionGeneration,
                                production: production, experiments: experiments, activateAt: configuration.activateAt,
                                activatedAt: Date().epochMillis)
        store.swap(to: next)
        if current.version >= 0, let late = next.lateByMillis {
            metrics.cutoverLateness.record(Double(late) / 1_000)
            if late > Self.lateTolerance {
                metrics.cutoversLate.increment()
                logger.warning("version \(configuration.version) swapped in \(late) ms after its activation time: this replica was not ready in time and served the old state until it was")
            }
        }
        metrics.swaps.increment()
        metrics.generation.record(configuration.productionGeneration)
        logger.info("serving generation \(configuration.productionGeneration) (\(production?.id.prefix(12) ?? "none")), \(experiments.count) running experiment(s)")
        return true
    }
}
