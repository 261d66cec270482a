import DuetCore
public import Foundation
import Synchronization

/// What a key may do. A web client holds a `read` key and never the `ingest` one.
public enum AccessRole: String, Codable, Sendable, CaseIterable {
    /// Recommendations and similar items (each recommendation also logs an exposure).
    case read
    /// POST /v1/events.
    case ingest
    /// GET /metrics, when Serve is told to protect it.
    case metrics
}

/// One key: only the SHA-256 of its secret is kept, so a leaked keys file or core dump does not
/// leak the keys themselves.
public struct AccessKey: Sendable {
    public var name: String
    public var roles: Set<AccessRole>
    /// Requests per second and burst of the key's token bucket; nil means unlimited.
    public var rate: RateLimit?
    let digest: [UInt8]

    public init(name: String, secret: String, roles: Set<AccessRole>, rate: RateLimit? = nil) {
        self.init(name: name, digest: Secrets.sha256(secret), roles: roles, rate: rate)
    }

    init(name: String, digest: [UInt8], roles: Set<AccessRole>, rate: RateLimit?) {
        self.name = name
        self.digest = digest
        self.roles = roles
        self.rate = rate
    }
}

public struct RateLimit: Codable, Sendable, Equatable {
    public var perSecond: Double
    public var burst: Double

    public init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }
}

/// The outcome of checking a request's key for a role.
public enum AccessDecision: Sendable, Equatable {
    case allowed(key: String?)
    /// No key, or one that matches none (401).
    case unauthenticated
    /// A known key without the role (403).
    case forbidden(key: String, role: AccessRole)
    /// The key's bucket is empty: retry after this many whole seconds (429).
    case limited(key: String, retryAfter: Int)
}

/// Serve's keys. With none configured every route is open, as before; with any, every /v1 route
/// needs a key holding the route's role.
public final class AccessKeys: Sendable {
    public let keys: [AccessKey]
    /// Whether GET /metrics needs a key with the `metrics` role.
    public let protectMetrics: Bool
    private let buckets: [SharedBucket?]

    public init(keys: [AccessKey], protectMetrics: Bool = false) {
        self.keys = keys
        self.protectMetrics = protectMetrics
        buckets = keys.map { key in key.rate.map { SharedBucket(TokenBucket(limit: $0)) } }
    }

    public var isOpen: Bool { keys.isEmpty }

    /// The key presented as `Authorization: Bearer …` or `X-API-Key`, checked in constant time
    /// against every configured key (no early exit), then its role and its rate.
    public func decide(presented: String?, role: AccessRole, now: ContinuousClock.Instant = .now) -> AccessDecision {
        guard !keys.isEmpty else { return .allowed(key: nil) }
        guard let presented, !presented.isEmpty else { return .unauthenticated }
        let digest = Secrets.sha256(presented)
        var match = -1
        for (index, key) in keys.enumerated() where Secrets.constantTimeEqual(key.digest, digest) { match = index }
        guard match >= 0 else { return .unauthenticated }
        let key = keys[match]
        guard key.roles.contains(role) else { return .forbidden(key: key.name, role: role) }
        if let bucket = buckets[match], let wait = bucket.state.withLock({ $0.take(now: now) }) {
            return .limited(key: key.name, retryAfter: wait)
        }
        return .allowed(key: key.name)
    }

    /// The keys file: `{"keys": [{"name", "roles", "sha256" or "secret", "rate": {"perSecond", "burst"}}],
    /// "protectMetrics": false}`. `duet serve-key` writes entries with only the hash.
    public static func parse(_ data: Data, origin: String) throws -> AccessKeys {
        struct File: Decodable {
            var keys: [Entry]
            var protectMetrics: Bool?
        }
        struct Entry: Decodable {
            var name: String
            var roles: [String]
            var sha256: String?
            var secret: String?
            var rate: RateLimit?
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw AccessKeysError("\(origin) is not a keys file: \(DecodingProblem.describe(error))")
        }
        var names = Set<String>()
        var keys: [AccessKey] = []
        for entry in file.keys {
            guard !entry.name.isEmpty, entry.name.count <= 64, entry.name.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
                throw AccessKeysError("\(origin): key name '\(entry.name.prefix(64))' must be 1–64 visible ASCII characters")
            }
            guard names.insert(entry.name).inserted else { throw AccessKeysError("\(origin): key '\(entry.name)' appears twice") }
            var roles = Set<AccessRole>()
            for text in entry.roles {
                guard let role = AccessRole(rawValue: text) else {
                    throw AccessKeysError("\(origin): key '\(entry.name)' has unknown role '\(text.prefix(32))'; roles are \(AccessRole.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                roles.insert(role)
            }
            guard !roles.isEmpty else { throw AccessKeysError("\(origin): key '\(entry.name)' has no roles") }
            if let rate = entry.rate, !(rate.perSecond > 0 && rate.perSecond.isFinite && rate.burst >= 1 && rate.burst.isFinite) {
                throw AccessKeysError("\(origin): key '\(entry.name)' needs rate.perSecond > 0 and rate.burst ≥ 1")
            }
            switch (entry.sha256, entry.secret) {
            case let (hex?, nil):
                guard let digest = Self.bytes(hex: hex), digest.count == 32 else {
                    throw AccessKeysError("\(origin): key '\(entry.name)' sha256 must be 64 hex digits")
                }
                keys.append(AccessKey(name: entry.name, digest: digest, roles: roles, rate: entry.rate))
            case let (nil, secret?):
                guard secret.utf8.count >= 16 else { throw AccessKeysError("\(origin): key '\(entry.name)' secret is shorter than 16 bytes") }
                keys.append(AccessKey(name: entry.name, secret: secret, roles: roles, rate: entry.rate))
            default:
                throw AccessKeysError("\(origin): key '\(entry.name)' needs exactly one of sha256 and secret")
            }
        }
        guard !keys.isEmpty else { throw AccessKeysError("\(origin) lists no keys") }
        return AccessKeys(keys: keys, protectMetrics: file.protectMetrics ?? false)
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        for pair in stride(from: 0, to: digits.count, by: 2) {
            guard let high = nibble(digits[pair]), let low = nibble(digits[pair + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

public struct AccessKeysError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// One key's bucket, locked on its own so keys never wait on each other.
final class SharedBucket: Sendable {
    let state: Mutex<TokenBucket>
    init(_ bucket: TokenBucket) { state = Mutex(bucket) }
}

/// A token bucket: `burst` requests at once, refilled at `perSecond`.
struct TokenBucket {
    let limit: RateLimit
    var tokens: Double
    /// When tokens were last counted; the first request starts the clock.
    var last: ContinuousClock.Instant?

    init(limit: RateLimit) {
        self.limit = limit
        tokens = limit.burst
    }

    /// Takes a token, or returns the whole seconds until one is there.
    mutating func take(now: ContinuousClock.Instant) -> Int? {
        let seconds = last.map { (now - $0).seconds } ?? 0
        if seconds > 0 { tokens = min(limit.burst, tokens + seconds * limit.perSecond) }
        if seconds > 0 || last == nil { last = now }
        guard tokens >= 1 else { return max(1, Int(((1 - tokens) / limit.perSecond).rounded(.up))) }
        tokens -= 1
        return nil
    }
}
