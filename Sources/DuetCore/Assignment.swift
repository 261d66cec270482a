/// Deterministic bucketing, compatible with GrowthBook's SDKs (spec 0.8.0, hash version 2):
/// a user bucketed by GrowthBook and by Duet with the same seed lands in the same arm.
/// Pure functions only, so Serve and the Lab always agree.
public enum Assignment {
    /// 32-bit FNV-1a over UTF-16 code units, as JavaScript's `charCodeAt` sees a string.
    @inlinable
    public static func fnv1a32(_ text: String) -> UInt32 {
        var hash: UInt32 = 0x811C_9DC5
        for unit in text.utf16 {
            hash ^= UInt32(unit)
            hash = hash &* 0x0100_0193
        }
        return hash
    }

    /// GrowthBook's `hash(seed, value, version)`: a number in [0, 1), or nil for an unknown version.
    ///   v1: (fnv1a32(value + seed) % 1000) / 1000
    ///   v2: (fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000
    public static func hash(seed: String, value: String, version: Int = 2) -> Double? {
        switch version {
        case 1: return Double(fnv1a32(value + seed) % 1000) / 1000
        case 2: return Double(fnv1a32(String(fnv1a32(seed + value))) % 10000) / 10000
        default: return nil
        }
    }

    public static func equalWeights(_ count: Int) -> [Double] {
        count <= 0 ? [] : Array(repeating: 1 / Double(count), count: count)
    }

    /// Arm i takes [cᵢ, cᵢ + coverage·wᵢ), cᵢ being the sum of the earlier weights (not scaled by coverage),
    /// so changing coverage never moves a user between arms. Coverage is clamped to [0, 1]; weights that
    /// do not match the arm count or sum outside [0.99, 1.01] fall back to equal weights, as GrowthBook does.
    public static func bucketRanges(count: Int, coverage: Double = 1, weights: [Double]? = nil) -> [Range<Double>] {
        let clamped = min(max(coverage, 0), 1)
        var chosen = weights ?? equalWeights(count)
        if chosen.count != count { chosen = equalWeights(count) }
        let total = chosen.reduce(0, +)
        if total < 0.99 || total > 1.01 { chosen = equalWeights(count) }
        var cumulative = 0.0
        return chosen.map { weight in
            let start = cumulative
            cumulative += weight
            return start..<(start + clamped * weight)
        }
    }

    /// The index of the range holding `n`, or nil when `n` falls in none.
    public static func chooseArm(_ n: Double, ranges: [Range<Double>]) -> Int? {
        ranges.firstIndex { $0.lowerBound <= n && n < $0.upperBound }
    }

    /// GrowthBook's `inNamespace`: the user's v1 hash under seed "__" + id falls in [start, end).
    public static func inNamespace(user: String, namespace: NamespaceRange) -> Bool {
        guard let n = hash(seed: "__" + namespace.id, value: user, version: 1) else { return false }
        return n >= namespace.start && n < namespace.end
    }

    /// The arm index for `user`, or nil when the user is outside the namespace or coverage.
    public static func arm(seed: String, user: String, weights: [Double], coverage: Double,
                           namespace: NamespaceRange? = nil) -> Int? {
        if let namespace, !inNamespace(user: user, namespace: namespace) { return nil }
        guard let n = hash(seed: seed, value: user, version: 2) else { return nil }
        return chooseArm(n, ranges: bucketRanges(count: weights.count, coverage: coverage, weights: weights))
    }
}
