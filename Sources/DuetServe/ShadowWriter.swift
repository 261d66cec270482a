public import DuetCore
import CoreMetrics
public import Logging
public import ServiceLifecycle
import Synchronization

/// Stores shadow lists off the request path, in batches, best effort: a full buffer or a failing
/// store drops shadow lists (counted), never delays or fails a shown one.
public final class ShadowWriter: Service, Sendable {
    let sink: any EventSink
    let capacity: Int
    let interval: Duration
    let logged: Counter
    let dropped: Counter
    let logger: Logger
    private let buffer = Mutex<[ShadowExposure]>([])

    public init(sink: any EventSink, capacity: Int = 10_000, interval: Duration = .milliseconds(200), metrics: ServeMetrics, logger: Logger) {
        self.sink = sink
        self.capacity = capacity
        self.interval = interval
        logged = metrics.shadowsLogged
        dropped = metrics.shadowsDropped
        self.logger = logger
    }

    public func enqueue(_ shadow: ShadowExposure) {
        let accepted = buffer.withLock { pending in
            guard pending.count < capacity else { return false }
            pending.append(shadow)
            return true
        }
        if !accepted { dropped.increment() }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await Task.sleep(for: interval)
            await flush()
        }
        await flush()
    }

    /// Stores what is buffered now.
    public func flush() async {
        let batch = buffer.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        guard !batch.isEmpty else { return }
        do {
            try await sink.append(shadows: batch)
            logged.increment(by: batch.count)
        } catch {
            dropped.increment(by: batch.count)
            logger.warning("\(batch.count) shadow list(s) dropped: \(error)")
        }
    }
}
