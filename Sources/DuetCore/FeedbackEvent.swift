import Foundation

/// What a listener did with an item. Open-ended: services log their own kinds,
/// and the well-known ones carry a meaning for training and analysis.
public struct EventKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static let play: EventKind = "play"
    public static let skip: EventKind = "skip"
    public static let save: EventKind = "save"
    public static let like: EventKind = "like"
    public static let dislike: EventKind = "dislike"
    public static let view: EventKind = "view"
    public static let click: EventKind = "click"

    /// Kinds that say "I did not want this"; snapshots leave them out of implicit training data.
    public static let negative: Set<EventKind> = [.skip, .dislike]

    public var isNegative: Bool { Self.negative.contains(self) }
    public var description: String { rawValue }

    /// Lower-case letters, digits, `_` and `-`, at most 32 characters.
    public static func validated(_ text: String) throws(DuetError) -> EventKind {
        let ok = !text.isEmpty && text.utf8.count <= 32
            && text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2D }
        guard ok else {
            throw .invalidValue(field: "kind", reason: "'\(text.prefix(40))' must be 1–32 characters of a-z, 0-9, '_' or '-'")
        }
        return EventKind(rawValue: text)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try Self.validated(text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// One thing a user did with an item, as Serve ingests it and the event log stores it.
/// `requestID` attributes the event to the recommendation list that led to it.
public struct FeedbackEvent: Hashable, Sendable, Codable {
    public var user: String
    public var item: String
    public var kind: EventKind
    /// Play count, milliseconds played, or 1 for a plain action.
    public var weight: Float
    public var timestamp: EpochMillis
    public var requestID: String?

    public init(user: String, item: String, kind: EventKind, weight: Float = 1, timestamp: EpochMillis, requestID: String? = nil) {
        self.user = user
        self.item = item
        self.kind = kind
        self.weight = weight
        self.timestamp = timestamp
        self.requestID = requestID
    }

    public func validate() throws(DuetError) {
        try Identifier.validate(user, field: "user")
        try Identifier.validate(item, field: "item")
        if let requestID { try Identifier.validate(requestID, field: "requestId") }
        guard weight.isFinite, weight >= 0 else {
            throw .invalidValue(field: "weight", reason: "\(weight) must be a finite number ≥ 0")
        }
        guard TimestampParser.validRange.contains(timestamp) else {
            throw .invalidValue(field: "timestamp", reason: "\(timestamp) ms is outside 1970 to 9999")
        }
    }

    enum CodingKeys: String, CodingKey {
        case user, item, kind, weight, timestamp
        case requestID = "requestId"
    }

    /// `timestamp` is accepted as ISO 8601 text or epoch seconds / milliseconds, and written as ISO 8601.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        user = try container.decode(String.self, forKey: .user)
        item = try container.decode(String.self, forKey: .item)
        kind = try container.decodeIfPresent(EventKind.self, forKey: .kind) ?? .play
        // Read as Double and checked here: decoding a Float straight from 1e-308 or 3.5e38 fails with
        // a message about invalid JSON instead of naming the weight.
        if let raw = try container.decodeIfPresent(Double.self, forKey: .weight) {
            guard raw.isFinite, raw >= 0, raw <= Double(Float.greatestFiniteMagnitude) else {
                throw DecodingError.dataCorruptedError(forKey: .weight, in: container,
                                                       debugDescription: "\(raw) must be a number from 0 to \(Double(Float.greatestFiniteMagnitude))")
            }
            weight = Float(raw)
        } else {
            weight = 1
        }
        requestID = try container.decodeIfPresent(String.self, forKey: .requestID)
        if let text = try? container.decode(String.self, forKey: .timestamp) {
            guard let millis = TimestampParser.epochMillis(Substring(text.prefix(64))) else {
                throw DecodingError.dataCorruptedError(forKey: .timestamp, in: container,
                                                       debugDescription: "'\(text.prefix(40))' is not ISO 8601 or epoch time from 1970 to 9999")
            }
            timestamp = millis
        } else if let number = try? container.decode(Double.self, forKey: .timestamp) {
            guard let millis = TimestampParser.epochMillis(number: number) else {
                throw DecodingError.dataCorruptedError(forKey: .timestamp, in: container,
                                                       debugDescription: "\(number) is not an epoch time from 1970 to 9999")
            }
            timestamp = millis
        } else {
            throw DecodingError.keyNotFound(CodingKeys.timestamp, .init(codingPath: container.codingPath,
                                                                         debugDescription: "timestamp is required"))
        }
        do { try validate() } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(user, forKey: .user)
        try container.encode(item, forKey: .item)
        try container.encode(kind, forKey: .kind)
        try container.encode(weight, forKey: .weight)
        try container.encode(TimestampParser.iso8601String(timestamp), forKey: .timestamp)
        try container.encodeIfPresent(requestID, forKey: .requestID)
    }
}
