import DuetCore
import Foundation
import Testing

/// SHA-256 and HMAC-SHA256 against published vectors (FIPS 180-4 examples, RFC 4231), on both
/// block functions: the x86 SHA extensions where the CPU has them, and portable C.
@Suite(.serialized) struct DigestTests {
    static let vectors: [(message: [UInt8], digest: String)] = [
        ([], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (Array("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (Array(("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
            + "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu").utf8),
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
        ([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000),
         "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ]

    static func eachBlockFunction(_ body: () throws -> Void) rethrows {
        defer { SHA256.allowAcceleration(true) }
        for accelerated in [true, false] {
            SHA256.allowAcceleration(accelerated)
            try body()
        }
    }

    @Test func publishedVectors() {
        Self.eachBlockFunction {
            for (message, digest) in Self.vectors {
                #expect(SHA256.hash(data: message).lowercaseHex == digest, "\(message.count) bytes, accelerated \(SHA256.isAccelerated)")
            }
        }
    }

    /// Fed in uneven pieces, across every padding boundary, the digest is the one-shot digest, and
    /// both block functions agree on every length.
    @Test func piecesAndBothBlockFunctionsAgree() {
        var generator = SystemRandomNumberGenerator()
        let message = (0..<1_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for length in 0...300 {
            let prefix = Array(message[0..<length])
            SHA256.allowAcceleration(false)
            let portable = SHA256.hash(data: prefix)
            SHA256.allowAcceleration(true)
            #expect(SHA256.hash(data: prefix) == portable, "length \(length)")
            var pieces = SHA256()
            var start = 0
            while start < length {
                let end = min(length, start + Int.random(in: 1...70, using: &generator))
                pieces.update(data: prefix[start..<end])
                start = end
            }
            #expect(pieces.finalize() == portable, "length \(length) in pieces")
        }
    }

    @Test func finalizeLeavesTheHasherUsable() {
        var hasher = SHA256()
        hasher.update(data: Array("ab".utf8))
        #expect(hasher.finalize().lowercaseHex == SHA256.hash(data: Array("ab".utf8)).lowercaseHex)
        hasher.update(data: Array("c".utf8))
        #expect(hasher.finalize().lowercaseHex == Self.vectors[1].digest)
    }

    @Test func hmacVectorsFromRFC4231() {
        let cases: [(key: [UInt8], message: String, mac: String)] = [
            ([UInt8](repeating: 0x0b, count: 20), "Hi There",
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), "what do ya want for nothing?",
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            // A key longer than the block is hashed first.
            ([UInt8](repeating: 0xaa, count: 131), "Test Using Larger Than Block-Size Key - Hash Key First",
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ]
        for (key, message, mac) in cases {
            #expect(HMACSHA256.authenticationCode(for: Array(message.utf8), key: key).lowercaseHex == mac, "\(message)")
        }
    }

    /// Session secrets and CSRF tokens: the asked-for number of random bytes as lowercase hex.
    @Test func randomHexIsLowercaseHexOfTheAskedLength() {
        let tokens = (0..<8).map { _ in Secrets.randomHex(bytes: 16) }
        for token in tokens { #expect(token.count == 32 && token.allSatisfy { "0123456789abcdef".contains($0) }, "\(token)") }
        #expect(Set(tokens).count == tokens.count)
        #expect(Secrets.randomHex().count == 64)
    }
}
