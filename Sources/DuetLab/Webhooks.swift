public import DuetCore
public import DuetStore
public import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Something the Lab did that others may want to hear about.
public enum LabNotification: Sendable {
    case promote(ProductionChange)
    case rollback(ProductionChange)
    case decision(id: Int64, Decision)
    case review(ReviewEntry)
    case experimentStarted(String)
    case experimentStopped(String)
    /// A rollout's step: started, advanced, paused, resumed, rolled back, aborted or completed.
    case rollout(RolloutEvent)
    /// A similarity index published or rolled back under its name.
    case index(IndexChange)

    /// The webhook event name, or nil for changes no webhook subscribes to (comments, approvals).
    var event: String? {
        switch self {
        case .promote: "promote"
        case .rollback: "rollback"
        case .decision: "decision"
        case let .review(entry): entry.kind == .objection ? "objection" : nil
        case .experimentStarted: "experiment.start"
        case .experimentStopped: "experiment.stop"
        case .rollout: "rollout"
        case .index: "index"
        }
    }

    /// What the JSON payload's "data" holds.
    var data: [String: String] {
        switch self {
        case let .promote(change), let .rollback(change):
            var data = ["generation": "\(change.generation)", "to": change.to, "actor": change.actor, "reason": change.reason]
            if let from = change.from { data["from"] = from }
            if let evaluation = change.evaluationID { data["evaluation"] = "\(evaluation)" }
            if let decision = change.decisionID { data["decision"] = "\(decision)" }
            if let override = change.overrideReason { data["override"] = override }
            return data
        case let .decision(id, decision):
            var data = ["decision": "\(id)", "experiment": decision.experimentID, "outcome": decision.outcome.rawValue,
                        "reviewer": decision.reviewer, "reason": decision.reason, "analysis": decision.analysisHash,
                        "approvers": decision.approvers.joined(separator: ","), "dissent": "\(decision.dissent.count)"]
            if let arm = decision.arm { data["arm"] = arm }
            return data
        case let .review(entry):
            return ["experiment": entry.experimentID, "entry": "\(entry.id ?? 0)", "author": entry.author, "text": entry.text]
        case let .experimentStarted(id), let .experimentStopped(id):
            return ["experiment": id]
        case let .rollout(event):
            var data = ["rollout": event.rollout, "action": event.action.rawValue, "stage": "\(event.stage + 1)",
                        "share": String(format: "%g", event.share), "actor": event.actor, "reason": event.reason]
            if let analysis = event.analysisHash { data["analysis"] = analysis }
            return data
        case let .index(change):
            var data = ["name": change.name, "action": change.action.rawValue, "generation": "\(change.generation)", "to": change.to,
                        "actor": change.actor, "reason": change.reason]
            if let from = change.from { data["from"] = from }
            return data
        }
    }
}

/// The body a webhook receives.
public struct WebhookPayload: Codable, Sendable, Equatable {
    public var delivery: String
    public var event: String
    public var occurredAt: EpochMillis
    public var data: [String: String]
}

/// Delivers notifications to webhooks, off the action's path: the action has committed before a
/// delivery starts, and a receiver that is down or slow only fills the delivery log. Each POST
/// carries `Duet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`; a failed attempt
/// (a transport error or a non-2xx answer) is retried after each step of `backoff`.
public actor WebhookDispatcher {
    let registry: any LabRegistry
    public var backoff: [Duration]
    public var timeout: Duration
    private var inflight: [UUID: Task<Void, Never>] = [:]

    public init(registry: any LabRegistry, backoff: [Duration] = [.seconds(1), .seconds(4), .seconds(15), .seconds(60)], timeout: Duration = .seconds(5)) {
        self.registry = registry
        self.backoff = backoff
        self.timeout = timeout
    }

    public func configure(backoff: [Duration], timeout: Duration) {
        self.backoff = backoff
        self.timeout = timeout
    }

    /// Starts delivering to every active webhook that wants the event; returns at once.
    func dispatch(_ notification: LabNotification, at now: EpochMillis) async {
        guard let event = notification.event else { return }
        let hooks: [WebhookRecord]
        do { hooks = try await registry.webhooks().filter { $0.wants(event) } } catch {
            FileHandle.standardError.write(Data("warning: webhooks not read, so \(event) was not delivered: \(error)\n".utf8))
            return
        }
        for hook in hooks {
            guard let hookID = hook.id else { continue }
            let payload = WebhookPayload(delivery: UUID().uuidString.lowercased(), event: event, occurredAt: now, data: notification.data)
            guard let body = try? Self.encode(payload) else { continue }
            start(hookID: hookID, url: hook.url, secret: hook.secret, delivery: payload.delivery, event: event, body: body, firstAttempt: 1)
        }
    }

    private func start(hookID: Int64, url: String, secret: String, delivery: String, event: String, body: String, firstAttempt: Int) {
        let key = UUID()
        let schedule = backoff, timeout = timeout, registry = registry
        inflight[key] = Task {
            var attempt = firstAttempt
            while true {
                let (status, failure) = await Self.post(url: url, secret: secret, delivery: delivery, event: event, body: body, timeout: timeout)
                let delivered = failure == nil
                let retriesLeft = attempt <= schedule.count
                let outcome: WebhookAttempt.Outcome = delivered ? .delivered : retriesLeft ? .retrying : .failed
                try? await registry.add(WebhookAttempt(webhook: hookID, delivery: delivery, event: event, payload: body, attempt: attempt,
                                                       statusCode: status, error: failure, outcome: outcome, at: Date().epochMillis))
                guard outcome == .retrying else { break }
                try? await Task.sleep(for: schedule[attempt - 1])
                if Task.isCancelled { break }
                attempt += 1
            }
            self.finished(key)
        }
    }

    private func finished(_ key: UUID) { inflight[key] = nil }

    /// Waits for deliveries in flight, at most `limit`; a short-lived process calls it before it exits.
    public func drain(within limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while !inflight.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Retries, once more each, the deliveries whose newest attempt left them retrying (an earlier
    /// process exited before their backoff ran out). Returns how many it started.
    public func retryPending() async throws -> Int {
        let attempts = try await registry.webhookAttempts(limit: 10_000)
        var newest: [String: WebhookAttempt] = [:]
        for attempt in attempts where newest[attempt.delivery] == nil { newest[attempt.delivery] = attempt }
        let hooks = Dictionary(uniqueKeysWithValues: try await registry.webhooks().compactMap { hook in hook.id.map { ($0, hook) } })
        var started = 0
        for attempt in newest.values where attempt.outcome == .retrying {
            guard let hook = hooks[attempt.webhook], hook.active else { continue }
            start(hookID: attempt.webhook, url: hook.url, secret: hook.secret, delivery: attempt.delivery, event: attempt.event, body: attempt.payload,
                  firstAttempt: attempt.attempt + 1)
            started += 1
        }
        return started
    }

    static func encode(_ payload: WebhookPayload) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(payload), as: UTF8.self)
    }

    /// `t=<seconds>,v1=<hex>`: the HMAC covers the timestamp too, so a captured body cannot be replayed later.
    public static func signature(body: String, secret: String, timestamp: Int64) -> String {
        let mac = HMACSHA256.authenticationCode(for: Data("\(timestamp).\(body)".utf8), key: Data(secret.utf8))
        return "t=\(timestamp),v1=\(mac.lowercaseHex)"
    }

    /// What a receiver runs: the signature matches the body and secret, and is at most `tolerance` old.
    public static func verify(body: String, header: String, secret: String, now: Date = Date(), tolerance: TimeInterval = 300) -> Bool {
        var timestamp: Int64?, given: String?
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int64(pair[1]) }
            if pair[0] == "v1" { given = pair[1] }
        }
        guard let timestamp, let given, abs(now.timeIntervalSince1970 - Double(timestamp)) <= tolerance else { return false }
        return Secrets.matches(signature(body: body, secret: secret, timestamp: timestamp), "t=\(timestamp),v1=\(given)")
    }

    static func post(url: String, secret: String, delivery: String, event: String, body: String, timeout: Duration) async -> (Int?, String?) {
        guard let target = URL(string: url) else { return (nil, "not a URL") }
        var request = URLRequest(url: target, timeoutInterval: timeout.seconds)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue(event, forHTTPHeaderField: "Duet-Event")
        request.setValue(delivery, forHTTPHeaderField: "Duet-Delivery")
        request.setValue(signature(body: body, secret: secret, timestamp: Int64(Date().timeIntervalSince1970)), forHTTPHeaderField: "Duet-Signature")
        do {
            let (_, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            return (status, (200..<300).contains(status) ? nil : "HTTP \(status)")
        } catch {
            return (nil, error.localizedDescription)
        }
    }
}

extension Lab {
    /// Tells the webhooks; never throws and never waits for a receiver.
    func notify(_ notification: LabNotification) async {
        await webhooks.dispatch(notification, at: Date().epochMillis)
    }

    /// Registers a webhook; the secret is what receivers verify signatures with.
    @discardableResult
    public func addWebhook(url: String, secret: String, events: [String], by person: String) async throws -> Int64 {
        try await registry.add(WebhookRecord(url: url, secret: secret, events: events, createdBy: person, createdAt: Date().epochMillis))
    }

    public func disableWebhook(_ id: Int64) async throws {
        try await registry.setWebhook(id, active: false)
    }
}
