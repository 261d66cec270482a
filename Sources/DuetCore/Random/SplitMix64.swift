import Foundation

/// A small, fast, seedable generator (Steele, Lea & Flood, "Fast splittable pseudorandom
/// number generators", 2014). Keyed streams make every entity's randomness independent of
/// generation order, so results are deterministic per seed whatever the threading.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// An independent stream for (seed, a, b), e.g. (worldSeed, entityKind, entityIndex).
    public init(seed: UInt64, _ a: UInt64, _ b: UInt64 = 0) {
        state = Self.mix(seed ^ Self.mix(a &* 0x9E37_79B9_7F4A_7C15 ^ Self.mix(b &+ 0x632B_E59B_D9B4_E019)))
    }

    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits.
    @inlinable
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal by Box–Muller.
    public mutating func gaussian() -> Double {
        let u1 = max(uniform(), 0x1.0p-60)
        let u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    @inlinable
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

