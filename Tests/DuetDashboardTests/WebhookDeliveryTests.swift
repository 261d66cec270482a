import DuetCore
import DuetDashboard
import DuetLab
import DuetStore
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import HTTPTypes
import Testing

/// Webhooks against a real HTTP receiver: a signed delivery, a retry after a 500, and a dead
/// receiver that never blocks the action and ends as failed in the delivery log.
@Suite struct WebhookDeliveryTests {
    actor Receiver {
        struct Received { var body: String; var signature: String?; var delivery: String?; var event: String? }
        var received: [Received] = []
        func record(_ item: Received) -> Int {
            received.append(item)
            return received.count
        }
    }

    static let secret = "whsec-0123456789abcdef"

    @Test func aSignedDeliveryIsRetriedAfterA500AndADeadReceiverNeverBlocks() async throws {
        try await withScratchFolder { folder in
            let lab = try Lab(home: DuetHome(root: folder))
            await lab.webhooks.configure(backoff: [.milliseconds(100), .milliseconds(200)], timeout: .seconds(2))
            let registry = lab.registry
            for id in ["a", "b"] { try await registry.register(ModelRecord(id: id, name: id, kind: "als", snapshot: "s", parent: nil, createdAt: 1)) }
            try await registry.create(ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                                        ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                                     successMetrics: ["plays_per_user"]))
            try await registry.start(experiment: "exp")
            try await registry.stop(experiment: "exp")
            _ = try await lab.addPerson("bob", team: "recs", contact: "bob@example.com")

            let receiver = Receiver()
            let router = Router()
            router.post("hook") { request, _ -> HTTPResponse.Status in
                let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
                let count = await receiver.record(.init(body: body, signature: request.headers[HTTPField.Name("Duet-Signature")!],
                                                        delivery: request.headers[HTTPField.Name("Duet-Delivery")!],
                                                        event: request.headers[HTTPField.Name("Duet-Event")!]))
                return count == 1 ? .internalServerError : .ok
            }
            try await Application(router: router).test(.live) { client in
                let port = try #require(client.port)
                let live = try await lab.addWebhook(url: "http://127.0.0.1:\(port)/hook", secret: Self.secret, events: ["objection"], by: "bob")
                // Nothing listens on port 9 (discard) here: every attempt fails at once.
                let dead = try await lab.addWebhook(url: "http://127.0.0.1:9/hook", secret: Self.secret, events: ["*"], by: "bob")
                try await lab.addWebhook(url: "http://127.0.0.1:\(port)/hook", secret: Self.secret, events: ["promote"], by: "bob")

                let objection = try await lab.object(to: "exp", as: "bob", text: "skips were not measured")
                #expect(objection.id != nil, "the action completed whatever the receivers do")
                await lab.webhooks.drain(within: .seconds(20))

                let received = await receiver.received
                #expect(received.count == 2, "one 500, then the retry; the promote-only webhook got nothing")
                let first = try #require(received.first), second = try #require(received.last)
                #expect(first.body == second.body && first.delivery == second.delivery, "a retry resends the same delivery")
                #expect(second.event == "objection")
                let signature = try #require(second.signature)
                #expect(WebhookDispatcher.verify(body: second.body, header: signature, secret: Self.secret))
                #expect(!WebhookDispatcher.verify(body: second.body + " ", header: signature, secret: Self.secret), "a changed body fails")
                #expect(!WebhookDispatcher.verify(body: second.body, header: signature, secret: "another-secret-0123"), "another secret fails")
                #expect(!WebhookDispatcher.verify(body: second.body, header: signature, secret: Self.secret,
                                                  now: Date().addingTimeInterval(3_600)), "an old signature fails")
                let payload = try JSONDecoder().decode(WebhookPayload.self, from: Data(second.body.utf8))
                #expect(payload.event == "objection" && payload.data["author"] == "bob" && payload.data["experiment"] == "exp")
                #expect(payload.data["text"] == "skips were not measured")

                let attempts = try await registry.webhookAttempts(limit: 100).reversed()
                let liveAttempts = attempts.filter { $0.webhook == live }
                #expect(liveAttempts.map(\.attempt) == [1, 2])
                #expect(liveAttempts.map(\.outcome) == [.retrying, .delivered])
                #expect(liveAttempts.map(\.statusCode) == [500, 200])
                let deadAttempts = attempts.filter { $0.webhook == dead }
                #expect(deadAttempts.map(\.attempt) == [1, 2, 3], "the first try and one retry per backoff step")
                #expect(deadAttempts.map(\.outcome) == [.retrying, .retrying, .failed])
                #expect(deadAttempts.allSatisfy { $0.statusCode == nil && $0.error != nil })
                // A comment is no event any webhook receives.
                try await lab.comment(on: "exp", as: "bob", text: "fine")
                await lab.webhooks.drain(within: .seconds(5))
                #expect(await receiver.received.count == 2)
                // The dashboard shows the log, never a secret.
                let pages = DashboardPages(lab: lab, eventLog: try SQLiteEventLog(path: lab.home.eventLogPath.path))
                let page = try await pages.webhooks(.readOnly).rendered
                #expect(page.contains("retrying") && page.contains("delivered") && page.contains("HTTP 500") && page.contains("failed"))
                #expect(!page.contains(Self.secret))
            }
        }
    }
}
