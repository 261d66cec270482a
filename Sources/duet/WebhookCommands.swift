import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "Notify other systems of promotions, rollbacks, decisions, objections and experiment starts and stops.",
        discussion: """
            Each POST carries a JSON body and Duet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body"> keyed \
            by the webhook's secret. A failed delivery is retried with backoff; a webhook never blocks the action. \
            Events: \(WebhookRules.events.joined(separator: ", ")).
            """,
        subcommands: [Add.self, List.self, Disable.self, Deliveries.self, Retry.self],
        defaultSubcommand: List.self
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a webhook.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "The receiver's URL.") var url: String
        @Option(help: "File holding the HMAC secret (16–256 characters); without it a secret is made and printed once.") var secretFile: String?
        @Option(help: "Events, comma-separated, or *.") var events: String = "*"
        func run() async throws {
            var secret = Secrets.randomHex(bytes: 32)
            var made = true
            if let secretFile {
                guard let text = try? String(contentsOfFile: secretFile, encoding: .utf8) else {
                    throw ValidationError("--secret-file \(secretFile) cannot be read")
                }
                secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
                made = false
            }
            let id = try await home.lab().addWebhook(url: url, secret: secret, events: events.split(separator: ",").map(String.init), by: try person.resolved())
            print("webhook #\(id) → \(url) for \(events)")
            if made { print("signing secret (shown once): \(secret)") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered webhooks (secrets not shown).")
        @OptionGroup var home: HomeOptions
        func run() async throws {
            for hook in try await home.lab().registry.webhooks() {
                print("#\(hook.id ?? 0) \(hook.active ? "active  " : "disabled") \(hook.url)  events \(hook.events.joined(separator: ","))  by \(hook.createdBy)")
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop delivering to a webhook.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Webhook number.") var id: Int64
        func run() async throws {
            try await home.lab().disableWebhook(id)
            print("webhook #\(id) disabled")
        }
    }

    struct Deliveries: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The delivery log, newest first.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "How many attempts.") var limit: Int = 50
        func run() async throws {
            let attempts = try await home.lab().registry.webhookAttempts(limit: limit)
            if output.json { return try printJSON(attempts) }
            for attempt in attempts {
                let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(attempt.at) / 1000))
                print("\(time)  #\(attempt.webhook)  \(attempt.event)  delivery \(attempt.delivery.prefix(8))  attempt \(attempt.attempt)  \(attempt.outcome.rawValue)\(attempt.statusCode.map { "  HTTP \($0)" } ?? "")\(attempt.error.map { "  \($0)" } ?? "")")
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Retry deliveries an earlier process left retrying (run it from cron, say).")
        @OptionGroup var home: HomeOptions
        func run() async throws {
            let lab = try await home.lab()
            let started = try await lab.webhooks.retryPending()
            await lab.webhooks.drain(within: .seconds(30))
            print("\(started) deliveries retried")
        }
    }
}
