import DuetCore
import DuetKernels
import DuetSimilarity

/// Every known user's exact list, `depth` items deep, computed when a factor bundle loads: a
/// bundle is immutable, so the scan a request would run gives the same answer every time. A
/// request reads its user's list and drops only what changes between requests (the `exclude`
/// parameter and what the user just consumed); while at least n items remain, the answer is the
/// scan's bit for bit, otherwise the request scans as before.
final class PrecomputedLists: Sendable {
    let depth: Int
    /// Users with a list (the others' lists needed more rows than the scan may read).
    let users: Int
    /// Row-major, `depth` per user, best first.
    private let items: [Int32]
    private let scores: [Float]
    /// Entries held for each user; -1 where proving the list needed more rows than the scan may read
    /// (the request then goes the usual way). Fewer than `depth` means no other item can be listed.
    private let lengths: [Int32]

    static let bytesPerEntry = MemoryLayout<Int32>.size + MemoryLayout<Float>.size

    /// Bytes the lists of a bundle with this many users take.
    static func bytes(users: Int, depth: Int) -> Int { users * (depth * bytesPerEntry + MemoryLayout<Int32>.size) }

    /// Scans once per user with `base` and the user's training history excluded, as `rank` does.
    init(bundle: ModelBundle, scan: NormOrderedScan, base: ExclusionSet, depth: Int, rowLimit: Int, threads: Int = 2) {
        self.depth = depth
        let users = bundle.userCount
        let entries = users * depth
        var items = [Int32](repeating: 0, count: entries)
        var scores = [Float](repeating: 0, count: entries)
        var lengths = [Int32](repeating: -1, count: users)
        let dimension = bundle.dimension
        if users > 0, depth > 0, dimension > 0 {
            items.withUnsafeMutableBufferPointer { itemsOut in
                scores.withUnsafeMutableBufferPointer { scoresOut in
                    lengths.withUnsafeMutableBufferPointer { lengthsOut in
                        let items = UnsafeMutableSendablePointer(itemsOut.baseAddress!)
                        let scores = UnsafeMutableSendablePointer(scoresOut.baseAddress!)
                        let lengths = UnsafeMutableSendablePointer(lengthsOut.baseAddress!)
                        let factors = UnsafeSendablePointer(bundle.userFactors.baseAddress!)
                        // Each user writes only its own rows.
                        Parallel.chunks(users, threads: threads, chunk: 256) { range, _ in
                            for user in range {
                                var excluded = base
                                for item in bundle.history(ofUser: user) { excluded.insert(Int(item)) }
                                guard let list = scan.search(factors.pointer + user * dimension, k: depth, excluding: excluded, rowLimit: rowLimit) else { continue }
                                for (position, neighbour) in list.enumerated() {
                                    items.pointer[user * depth + position] = Int32(neighbour.id)
                                    scores.pointer[user * depth + position] = neighbour.score
                                }
                                lengths.pointer[user] = Int32(list.count)
                            }
                        }
                    }
                }
            }
        }
        self.items = items
        self.scores = scores
        self.lengths = lengths
        self.users = lengths.count { $0 >= 0 }
    }

    /// The best `n` of `user`'s list without the rows in `dropped`, or nil when the list cannot prove them.
    func top(_ n: Int, ofUser user: Int, dropping dropped: [Int]) -> [RankedItem]? {
        let length = Int(lengths[user])
        guard length >= 0, n <= depth else { return nil }
        var ranked: [RankedItem] = []
        ranked.reserveCapacity(n)
        let start = user * depth
        for entry in start..<(start + length) where ranked.count < n {
            let item = items[entry]
            if !dropped.isEmpty, dropped.contains(Int(item)) { continue }
            ranked.append(RankedItem(item: item, score: scores[entry]))
        }
        // Short of n: only a list that already holds every listable item is the whole answer.
        guard ranked.count == n || length < depth else { return nil }
        return ranked
    }
}

/// How Serve precomputes known users' lists when a factor bundle loads (`PrecomputedLists`).
public struct ListPrecomputation: Sendable {
    /// Items per user: n up to this is answered from the list while n items remain after the request's exclusions.
    public var depth = 40
    /// Most bytes one bundle's lists may take (8 per item per user); a bundle that needs more scans per request.
    public var maxBytes = 64 << 20
    /// Serve's `annThreshold`: a list the scan cannot prove within it is left to the request path.
    public var annThreshold = 20_000

    public init(depth: Int = 40, maxBytes: Int = 64 << 20, annThreshold: Int = 20_000) {
        self.depth = depth
        self.maxBytes = maxBytes
        self.annThreshold = annThreshold
    }

    public static let off = ListPrecomputation(maxBytes: 0)
}
