import DuetCore
import Foundation
@testable import DuetServe
import Testing

@Suite struct AccessKeysTests {
    let keys = AccessKeys(keys: [
        AccessKey(name: "web", secret: "read-secret-0123456789", roles: [.read]),
        AccessKey(name: "collector", secret: "ingest-secret-0123456789", roles: [.ingest]),
    ])

    @Test func aKeyIsAllowedOnlyForItsRoles() {
        #expect(keys.decide(presented: "read-secret-0123456789", role: .read) == .allowed(key: "web"))
        #expect(keys.decide(presented: "read-secret-0123456789", role: .ingest) == .forbidden(key: "web", role: .ingest))
        #expect(keys.decide(presented: "ingest-secret-0123456789", role: .ingest) == .allowed(key: "collector"))
        #expect(keys.decide(presented: "ingest-secret-0123456789", role: .read) == .forbidden(key: "collector", role: .read))
        #expect(keys.decide(presented: nil, role: .read) == .unauthenticated)
        #expect(keys.decide(presented: "", role: .read) == .unauthenticated)
        #expect(keys.decide(presented: "read-secret-012345678", role: .read) == .unauthenticated, "a prefix is not the key")
        #expect(keys.decide(presented: "read-secret-0123456789 ", role: .read) == .unauthenticated)
        #expect(AccessKeys(keys: []).decide(presented: nil, role: .ingest) == .allowed(key: nil), "no keys: open, as documented")
    }

    @Test func theComparisonLooksAtEveryByte() {
        let a: [UInt8] = Array(repeating: 7, count: 32)
        for position in [0, 15, 31] {
            var b = a
            b[position] ^= 1
            #expect(!Secrets.constantTimeEqual(a, b))
        }
        #expect(Secrets.constantTimeEqual(a, a))
        #expect(!Secrets.constantTimeEqual(a, Array(a.prefix(31))))
    }

    @Test func theBucketGivesItsBurstThenRefillsAtItsRate() {
        let start = ContinuousClock.now
        let limited = AccessKeys(keys: [AccessKey(name: "app", secret: "app-secret-0123456789", roles: [.read], rate: RateLimit(perSecond: 2, burst: 3))])
        for _ in 0..<3 { #expect(limited.decide(presented: "app-secret-0123456789", role: .read, now: start) == .allowed(key: "app")) }
        #expect(limited.decide(presented: "app-secret-0123456789", role: .read, now: start) == .limited(key: "app", retryAfter: 1))
        // Half a second at 2/s refills one token, and no more.
        let later = start + .milliseconds(500)
        #expect(limited.decide(presented: "app-secret-0123456789", role: .read, now: later) == .allowed(key: "app"))
        #expect(limited.decide(presented: "app-secret-0123456789", role: .read, now: later) == .limited(key: "app", retryAfter: 1))
        // A slow bucket says how long: at 0.1/s an empty bucket needs 10 s.
        let slow = AccessKeys(keys: [AccessKey(name: "slow", secret: "slow-secret-0123456789", roles: [.read], rate: RateLimit(perSecond: 0.1, burst: 1))])
        #expect(slow.decide(presented: "slow-secret-0123456789", role: .read, now: start) == .allowed(key: "slow"))
        #expect(slow.decide(presented: "slow-secret-0123456789", role: .read, now: start) == .limited(key: "slow", retryAfter: 10))
        // A wrong role spends no token.
        #expect(limited.decide(presented: "app-secret-0123456789", role: .ingest, now: start + .seconds(5)) == .forbidden(key: "app", role: .ingest))
    }

    @Test func theKeysFileKeepsHashesAndNamesEveryProblem() throws {
        let hash = Secrets.sha256Hex("hashed-secret-0123456789")
        let parsed = try AccessKeys.parse(Data(#"""
            {"keys": [{"name": "web", "roles": ["read"], "sha256": "\#(hash)", "rate": {"perSecond": 50, "burst": 100}},
                      {"name": "ops", "roles": ["metrics", "ingest"], "secret": "plain-secret-0123456789"}],
             "protectMetrics": true}
            """#.utf8), origin: "keys.json")
        #expect(parsed.protectMetrics)
        #expect(parsed.decide(presented: "hashed-secret-0123456789", role: .read) == .allowed(key: "web"))
        #expect(parsed.decide(presented: "plain-secret-0123456789", role: .metrics) == .allowed(key: "ops"))
        #expect(parsed.keys[0].rate == RateLimit(perSecond: 50, burst: 100))

        let bad: [(String, String)] = [
            (#"{"keys": []}"#, "lists no keys"),
            (#"{"keys": [{"name": "a", "roles": ["write"], "secret": "0123456789abcdef"}]}"#, "unknown role 'write'"),
            (#"{"keys": [{"name": "a", "roles": [], "secret": "0123456789abcdef"}]}"#, "has no roles"),
            (#"{"keys": [{"name": "a", "roles": ["read"], "secret": "short"}]}"#, "shorter than 16 bytes"),
            (#"{"keys": [{"name": "a", "roles": ["read"], "sha256": "abc"}]}"#, "64 hex digits"),
            (#"{"keys": [{"name": "a", "roles": ["read"], "sha256": "\#(hash)", "secret": "0123456789abcdef"}]}"#, "exactly one of sha256 and secret"),
            (#"{"keys": [{"name": "a", "roles": ["read"]}]}"#, "exactly one of sha256 and secret"),
            (#"{"keys": [{"name": "a", "roles": ["read"], "sha256": "\#(hash)"}, {"name": "a", "roles": ["read"], "sha256": "\#(hash)"}]}"#, "appears twice"),
            (#"{"keys": [{"name": "a b", "roles": ["read"], "sha256": "\#(hash)"}]}"#, "visible ASCII"),
            (#"{"keys": [{"name": "a", "roles": ["read"], "sha256": "\#(hash)", "rate": {"perSecond": 0, "burst": 1}}]}"#, "rate.perSecond > 0"),
            (#"{"keys": [{"name": "a", "roles": "read", "sha256": "\#(hash)"}]}"#, "keys.json is not a keys file"),
            ("not json", "keys.json is not a keys file"),
        ]
        for (text, message) in bad {
            #expect(throws: AccessKeysError.self) { try AccessKeys.parse(Data(text.utf8), origin: "keys.json") }
            do { _ = try AccessKeys.parse(Data(text.utf8), origin: "keys.json") } catch {
                #expect("\(error)".contains(message), "\(text) → \(error)")
            }
        }
    }
}
