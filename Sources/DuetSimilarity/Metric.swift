/// How similarity is measured. Scores are "higher is better" everywhere in the API.
public enum SimilarityMetric: String, Sendable, Codable, CaseIterable {
    /// Raw inner product, as for ALS factors (user · item).
    case innerProduct = "ip"
    /// Cosine: vectors and queries are normalised, then compared by inner product.
    case cosine

    var code: UInt32 { self == .innerProduct ? 0 : 1 }
    init?(code: UInt32) {
        switch code {
        case 0: self = .innerProduct
        case 1: self = .cosine
        default: return nil
        }
    }
}

/// One search result: the row's index in the indexed matrix and its score.
public struct Neighbour: Sendable, Hashable {
    public var id: Int
    public var score: Float

    public init(id: Int, score: Float) {
        self.id = id
        self.score = score
    }
}

/// What a search may return, tested on each candidate inside the search.
public protocol SearchFilter {
    func rejects(_ id: Int) -> Bool
    /// True when nothing is rejected, so a scan can skip the test.
    var admitsEverything: Bool { get }
}

/// Which ids a search must skip: consumed items, unavailable items, the query item itself.
/// Also used as a plain set of rows (`ItemSet`), e.g. the items a predicate allows.
public struct ExclusionSet: Sendable, SearchFilter {
    private var bits: [UInt64]

    public init(capacity: Int, excluding ids: some Sequence<Int> = []) {
        bits = [UInt64](repeating: 0, count: (capacity + 63) / 64)
        for id in ids { insert(id) }
    }

    public static let none = ExclusionSet(capacity: 0)

    public mutating func insert(_ id: Int) {
        guard id >= 0, id / 64 < bits.count else { return }
        bits[id / 64] |= 1 << UInt64(id % 64)
    }

    @inline(__always)
    public func contains(_ id: Int) -> Bool {
        let word = id >> 6
        return word < bits.count && bits[word] & (1 << UInt64(id & 63)) != 0
    }

    public var isEmpty: Bool { bits.allSatisfy { $0 == 0 } }

    /// The set as a bitmap: bit id % 64 of word id / 64.
    public func withWords<Result>(_ body: (UnsafeBufferPointer<UInt64>) throws -> Result) rethrows -> Result {
        try bits.withUnsafeBufferPointer(body)
    }

    @inline(__always) public func rejects(_ id: Int) -> Bool { contains(id) }
    public var admitsEverything: Bool { isEmpty }

    /// Adds every id of `other`.
    public mutating func formUnion(_ other: ExclusionSet) {
        if other.bits.count > bits.count { bits += [UInt64](repeating: 0, count: other.bits.count - bits.count) }
        for word in other.bits.indices { bits[word] |= other.bits[word] }
    }

    /// How many ids are in the set.
    public var count: Int { bits.reduce(0) { $0 + $1.nonzeroBitCount } }
}

/// A set of rows, e.g. the items a predicate allows.
public typealias ItemSet = ExclusionSet
