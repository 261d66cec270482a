/// The k best (score, id) pairs seen so far, in a fixed-size min-heap: O(n log k), no allocation
/// after init. Ties go to the smaller id, so results are deterministic.
public struct TopK {
    public let capacity: Int
    public private(set) var scores: [Float]
    public private(set) var ids: [Int32]
    public private(set) var count = 0

    public init(_ k: Int) {
        capacity = max(0, k)
        scores = [Float](repeating: 0, count: capacity)
        ids = [Int32](repeating: 0, count: capacity)
    }

    public mutating func reset() { count = 0 }

    /// The worst score kept, once full: anything not better can be skipped.
    @inlinable public var threshold: Float { count < capacity ? -.infinity : scores[0] }

    @inline(__always)
    static func worse(_ s1: Float, _ i1: Int32, _ s2: Float, _ i2: Int32) -> Bool {
        s1 < s2 || (s1 == s2 && i1 > i2)
    }

    public mutating func push(_ score: Float, _ id: Int32) {
        guard capacity > 0, !score.isNaN else { return }
        if count < capacity {
            var child = count
            count += 1
            scores[child] = score
            ids[child] = id
            while child > 0 {
                let parent = (child - 1) / 2
                guard Self.worse(scores[child], ids[child], scores[parent], ids[parent]) else { break }
                scores.swapAt(child, parent)
                ids.swapAt(child, parent)
                child = parent
            }
            return
        }
        guard Self.worse(scores[0], ids[0], score, id) else { return }
        scores[0] = score
        ids[0] = id
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var worst = parent
            if left < count, Self.worse(scores[left], ids[left], scores[worst], ids[worst]) { worst = left }
            if right < count, Self.worse(scores[right], ids[right], scores[worst], ids[worst]) { worst = right }
            if worst == parent { break }
            scores.swapAt(parent, worst)
            ids.swapAt(parent, worst)
            parent = worst
        }
    }

    /// Best first.
    public func sorted() -> [(id: Int32, score: Float)] {
        (0..<count).map { (ids[$0], scores[$0]) }.sorted { $0.score != $1.score ? $0.score > $1.score : $0.id < $1.id }
    }

    /// The top k of `scores[0..<n]`, skipping ids for which `excluded` is true.
    public static func select(_ scores: UnsafeBufferPointer<Float>, k: Int, excluded: (Int) -> Bool = { _ in false }) -> [(id: Int32, score: Float)] {
        var heap = TopK(k)
        for index in 0..<scores.count where scores[index] > heap.threshold || heap.count < heap.capacity {
            if !excluded(index) { heap.push(scores[index], Int32(index)) }
        }
        return heap.sorted()
    }
}
