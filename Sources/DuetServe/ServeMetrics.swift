public import CoreMetrics
import Synchronization

/// Serve's own instruments, created from an explicit factory so tests never touch the global one.
public final class ServeMetrics: Sendable {
    let factory: any MetricsFactory
    let generation: Gauge
    let eventsIngested: Counter
    let exposuresLogged: Counter
    let exposuresSpilled: Counter
    /// Exposures neither logged nor spilled (the spill file could not be written): alert on it.
    let exposuresLost: Counter
    let swaps: Counter
    let swapRefusals: Counter
    /// One counter per fallback reason, made once: fallbacks happen on the request path.
    private let fallbacks = Mutex<[String: Counter]>([:])
    /// Recommendations by what answered them: "exact", an HNSW index's name (the exact scan handed
    /// over) or "popularity".
    private let answered = Mutex<[String: Counter]>([:])

    public init(factory: any MetricsFactory) {
        self.factory = factory
        generation = Gauge(label: "duet_bundle_generation", factory: factory)
        eventsIngested = Counter(label: "duet_events_ingested_total", factory: factory)
        exposuresLogged = Counter(label: "duet_exposures_logged_total", factory: factory)
        exposuresSpilled = Counter(label: "duet_exposures_spilled_total", factory: factory)
        exposuresLost = Counter(label: "duet_exposures_lost_total", factory: factory)
        swaps = Counter(label: "duet_swaps_total", factory: factory)
        swapRefusals = Counter(label: "duet_swap_refusals_total", factory: factory)
    }

    func fallback(_ reason: String) {
        Self.counter(in: fallbacks, label: "duet_fallbacks_total", dimension: "reason", value: reason, factory: factory).increment()
    }

    func answered(by index: String) {
        Self.counter(in: answered, label: "duet_recommendations_total", dimension: "index", value: index, factory: factory).increment()
    }

    private static func counter(in counters: borrowing Mutex<[String: Counter]>, label: String, dimension: String, value: String,
                                factory: any MetricsFactory) -> Counter {
        counters.withLock { counters in
            if let existing = counters[value] { return existing }
            let counter = Counter(label: label, dimensions: [(dimension, value)], factory: factory)
            counters[value] = counter
            return counter
        }
    }
}
