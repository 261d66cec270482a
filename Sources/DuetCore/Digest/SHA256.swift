import CDuetDigest
public import Foundation

/// SHA-256 over bytes fed in any number of pieces. Our own small C (with the x86 SHA extensions
/// where present) rather than swift-crypto: a bundle checksum, a chunk digest and a webhook
/// signature are all Duet needs, and swift-crypto's BoringSSL was a minute of every cold build.
public struct SHA256: Sendable {
    public static let digestBytes = 32
    private var context = duet_sha256_context()

    public init() { duet_sha256_init(&context) }

    public mutating func update(bufferPointer bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        duet_sha256_update(&context, base, bytes.count)
    }

    public mutating func update(data: some DataProtocol) {
        for region in data.regions { region.withUnsafeBytes { update(bufferPointer: $0) } }
    }

    /// The digest so far; the hasher itself is left as it was, so more may still be fed.
    public func finalize() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Self.digestBytes) { buffer, count in
            finalize(into: UnsafeMutableRawPointer(buffer.baseAddress!))
            count = Self.digestBytes
        }
    }

    /// Writes the 32 digest bytes to `destination`, allocating nothing.
    public func finalize(into destination: UnsafeMutableRawPointer) {
        var copy = context
        duet_sha256_final(&copy, destination.assumingMemoryBound(to: UInt8.self))
    }

    public static func hash(data: some DataProtocol) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: data)
        return hasher.finalize()
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return hasher.finalize()
    }

    /// Whether the x86 SHA extensions do the work (portable C otherwise).
    public static var isAccelerated: Bool { duet_sha256_accelerated() != 0 }

    /// Tests only: `false` forces the portable block function so both can be checked.
    @discardableResult
    public static func allowAcceleration(_ allowed: Bool) -> Bool { duet_sha256_select(allowed ? 1 : 0) != 0 }
}

/// HMAC-SHA256 (RFC 2104), the signature on webhook deliveries.
public enum HMACSHA256 {
    public static func authenticationCode(for message: some DataProtocol, key: some DataProtocol) -> [UInt8] {
        let blockBytes = 64
        var block = key.count > blockBytes ? SHA256.hash(data: key) : [UInt8](key)
        block += [UInt8](repeating: 0, count: blockBytes - block.count)
        var inner = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        inner.update(data: message)
        var outer = SHA256()
        outer.update(data: block.map { $0 ^ 0x5c })
        outer.update(data: inner.finalize())
        return outer.finalize()
    }
}

extension Sequence<UInt8> {
    /// Lowercase hex, two digits a byte.
    public var lowercaseHex: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
