import Synchronization

/// Request ids in UUIDv7 form (RFC 9562). The millisecond timestamp comes first, so ids sort by
/// time and the exposure log's unique index grows at its end instead of at random pages. The rest
/// is a counter and a random per-process nonce: replicas never collide, and no random bytes are
/// drawn per request.
final class RequestIDs: Sendable {
    private let nonce: UInt64
    private let counter = Atomic<UInt64>(0)

    init(nonce: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.nonce = nonce & (1 << 42 - 1)
    }

    func next(milliseconds: Int64) -> String {
        let count = counter.add(1, ordering: .relaxed).newValue & 0xFFFF_FFFF
        let high = UInt64(truncatingIfNeeded: milliseconds) << 16 | 0x7000 | (count >> 20)
        let low = 0x8000_0000_0000_0000 | (count & 0xF_FFFF) << 42 | nonce
        return Self.format(high, low)
    }

    /// 8-4-4-4-12 lowercase hex digits.
    static func format(_ high: UInt64, _ low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var position = 0
            func put(_ value: UInt64, nibbles: Int) {
                for shift in stride(from: (nibbles - 1) * 4, through: 0, by: -4) {
                    buffer[position] = digits.utf8Start[Int(value >> UInt64(shift) & 0xF)]
                    position += 1
                }
            }
            func dash() { buffer[position] = UInt8(ascii: "-"); position += 1 }
            put(high >> 32, nibbles: 8); dash()
            put(high >> 16, nibbles: 4); dash()
            put(high, nibbles: 4); dash()
            put(low >> 48, nibbles: 4); dash()
            put(low, nibbles: 12)
            return position
        }
    }
}
