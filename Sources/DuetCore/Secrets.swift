import Foundation

/// Secrets made and compared the same way everywhere: keys, session ids, CSRF tokens, seeds.
public enum Secrets {
    /// `bytes` random bytes from the system's cryptographic generator, as lowercase hex.
    public static func randomHex(bytes: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }.lowercaseHex
    }

    public static func sha256(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }

    public static func sha256Hex(_ text: String) -> String { ModelBundle.sha256Hex(Data(text.utf8)) }

    /// Equal in time that depends only on the lengths, not on where the first difference is.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Compares two secrets through their SHA-256, so neither length nor content leaks through timing.
    public static func matches(_ presented: String, _ expected: String) -> Bool {
        constantTimeEqual(sha256(presented), sha256(expected))
    }
}
