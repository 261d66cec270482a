public import DuetCore
import Foundation

/// A receiver of notifications: the Lab signs each payload with its secret (HMAC-SHA256).
public struct WebhookRecord: Codable, Sendable, Hashable {
    public var id: Int64?
    public var url: String
    /// The HMAC key. Kept in the registry, which only the Lab reads: the Lab must sign with it.
    public var secret: String
    /// Event names it receives (see `WebhookRules.events`), or ["*"] for all.
    public var events: [String]
    public var createdBy: String
    public var createdAt: EpochMillis
    public var active: Bool

    public init(id: Int64? = nil, url: String, secret: String, events: [String], createdBy: String, createdAt: EpochMillis, active: Bool = true) {
        self.id = id
        self.url = url
        self.secret = secret
        self.events = events
        self.createdBy = createdBy
        self.createdAt = createdAt
        self.active = active
    }

    public func wants(_ event: String) -> Bool { active && (events.contains("*") || events.contains(event)) }
}

/// One attempt to deliver one notification to one webhook. The log is append-only.
public struct WebhookAttempt: Codable, Sendable, Hashable {
    public enum Outcome: String, Codable, Sendable { case delivered, retrying, failed }

    public var id: Int64?
    public var webhook: Int64
    /// Shared by every attempt of the same delivery.
    public var delivery: String
    public var event: String
    public var payload: String
    public var attempt: Int
    public var statusCode: Int?
    public var error: String?
    public var outcome: Outcome
    public var at: EpochMillis

    public init(id: Int64? = nil, webhook: Int64, delivery: String, event: String, payload: String, attempt: Int, statusCode: Int?,
                error: String?, outcome: Outcome, at: EpochMillis) {
        self.id = id
        self.webhook = webhook
        self.delivery = delivery
        self.event = event
        self.payload = payload
        self.attempt = attempt
        self.statusCode = statusCode
        self.error = error
        self.outcome = outcome
        self.at = at
    }
}

public enum WebhookRules {
    public static let events = ["promote", "rollback", "decision", "objection", "experiment.start", "experiment.stop", "rollout", "index"]

    public static func validate(_ webhook: WebhookRecord) throws {
        guard let url = URL(string: webhook.url), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty else {
            throw DuetError.invalidValue(field: "url", reason: "'\(webhook.url)' must be an http:// or https:// URL with a host")
        }
        guard webhook.secret.count >= 16, webhook.secret.count <= 256 else {
            throw DuetError.invalidValue(field: "secret", reason: "must be 16–256 characters (\(webhook.secret.count) given)")
        }
        guard !webhook.events.isEmpty else { throw DuetError.invalidValue(field: "events", reason: "name at least one, or *") }
        for event in webhook.events where event != "*" && !events.contains(event) {
            throw DuetError.invalidValue(field: "events", reason: "'\(event)' is not one of \(events.joined(separator: ", ")), or *")
        }
        try RegistryRules.requireText(webhook.createdBy, "created by")
    }
}
