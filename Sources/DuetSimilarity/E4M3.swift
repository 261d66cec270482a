/// 8-bit floats in the OCP FP8 E4M3 format (1 sign, 4 exponent bits with bias 7, 3 mantissa bits,
/// no infinities, largest finite ±448), as Voyager stores vectors to cut memory by 4×. Used here to
/// measure what 8-bit storage does to recall and speed before committing an index format to it.
public enum E4M3 {
    /// Every code's value; 0x7F and 0xFF are NaN.
    public static let values: [Float] = (0..<256).map { decodeSlowly(UInt8($0)) }

    /// The finite non-negative values in increasing order, with their codes, for encoding.
    private static let positives: [(value: Float, code: UInt8)] =
        (0..<0x7F).map { (values[$0], UInt8($0)) }.sorted { $0.value < $1.value }

    public static let largest: Float = 448

    static func decodeSlowly(_ code: UInt8) -> Float {
        let sign: Float = code & 0x80 == 0 ? 1 : -1
        let exponent = Int(code >> 3 & 0xF), mantissa = Float(code & 0x7)
        if exponent == 0xF, code & 0x7 == 0x7 { return .nan }
        if exponent == 0 { return sign * mantissa / 8 * 0x1p-6 }
        return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    @inline(__always) public static func decode(_ code: UInt8) -> Float { values[Int(code)] }

    /// Nearest representable value (ties to the even code); beyond ±448 saturates, NaN gives 0x7F.
    public static func encode(_ value: Float) -> UInt8 {
        if value.isNaN { return 0x7F }
        let magnitude = min(abs(value), largest)
        var low = 0, high = positives.count - 1
        while low < high {
            let middle = (low + high) / 2
            if positives[middle].value < magnitude { low = middle + 1 } else { high = middle }
        }
        var best = positives[low]
        if low > 0 {
            let below = positives[low - 1]
            let belowGap = magnitude - below.value, aboveGap = best.value - magnitude
            if belowGap < aboveGap || (belowGap == aboveGap && below.code & 1 == 0) { best = below }
        }
        return value.sign == .minus && best.code != 0 ? best.code | 0x80 : best.code
    }

    /// Σ decode(codes[i])·query[i]
    @inlinable
    public static func dot(_ codes: UnsafePointer<UInt8>, _ query: UnsafePointer<Float>, _ count: Int) -> Float {
        values.withUnsafeBufferPointer { table in
            var first: Float = 0, second: Float = 0
            var index = 0
            while index + 2 <= count {
                first += table[Int(codes[index])] * query[index]
                second += table[Int(codes[index + 1])] * query[index + 1]
                index += 2
            }
            if index < count { first += table[Int(codes[index])] * query[index] }
            return first + second
        }
    }
}
