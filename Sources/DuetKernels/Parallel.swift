import Dispatch
import Synchronization

/// Pointers handed to worker threads that each write disjoint parts.
public struct UnsafeMutableSendablePointer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    public init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

public struct UnsafeSendablePointer<T>: @unchecked Sendable {
    public let pointer: UnsafePointer<T>
    public init(_ pointer: UnsafePointer<T>) { self.pointer = pointer }
}

/// Multi-threaded loops with dynamic chunking: threads take the next chunk from an atomic counter,
/// so skewed rows (a few heavy users) do not leave a core idle.
public enum Parallel {
    /// Runs `body(worker)` for worker in 0..<count on up to `threads` threads.
    public static func forEach(_ count: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
        if threads <= 1 || count <= 1 {
            for index in 0..<count { body(index) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }

    /// Calls `body(range, worker)` over chunks of 0..<count. `worker` is in 0..<threads, so callers
    /// can give each thread its own scratch buffers.
    public static func chunks(_ count: Int, threads: Int, chunk: Int = 64, _ body: @Sendable (Range<Int>, Int) -> Void) {
        let workers = max(1, min(threads, (count + chunk - 1) / max(chunk, 1)))
        if workers == 1 {
            var start = 0
            while start < count {
                body(start..<min(start + chunk, count), 0)
                start += chunk
            }
            return
        }
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            let box = Box(body)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while true {
                    let start = next.wrappingAdd(chunk, ordering: .relaxed).oldValue
                    if start >= count { return }
                    box.body(start..<min(start + chunk, count), worker)
                }
            }
        }
    }

    private final class Box: @unchecked Sendable {
        let body: @Sendable (Range<Int>, Int) -> Void
        init(_ body: @escaping @Sendable (Range<Int>, Int) -> Void) { self.body = body }
    }
}
