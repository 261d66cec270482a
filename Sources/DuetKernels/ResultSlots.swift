import Synchronization

/// Slots that parallel workers fill, each worker writing only its own indexes.
public final class ResultSlots<T: Sendable>: Sendable {
    private let storage: Mutex<[T?]>

    public init(count: Int) { storage = Mutex(Array(repeating: nil, count: count)) }

    public subscript(index: Int) -> T? {
        get { storage.withLock { $0[index] } }
        set { storage.withLock { $0[index] = newValue } }
    }
}
