import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct ReviewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "review",
        abstract: "Review a stopped experiment before its decision: comment, object, resolve, overrule, approve.",
        discussion: """
            The first entry moves a stopped experiment into review. An open objection blocks the decision until its \
            author resolves it or someone else overrules it with a reason (the decision records it as dissent). An \
            approval names the analysis read, which must be the newest; the experiment's author's approval is not taken. \
            Entries are append-only.
            """,
        subcommands: [Show.self, Comment.self, Object.self, Resolve.self, Overrule.self, Approve.self],
        defaultSubcommand: Show.self
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The review: threads, objections and their state, approvals.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Experiment id.") var id: String

        func run() async throws {
            let lab = try await home.lab()
            guard let record = try await lab.registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
            let state = try await lab.reviewState(of: id)
            if output.json { return try printJSON(state.entries) }
            let spec = record.spec
            print("experiment \(id): \(spec.status.rawValue); author \(spec.author ?? "unknown"); owner \(spec.owner.map { "\($0.team) (\($0.contact))" } ?? "none")")
            print("  a decision needs \(spec.requiredApprovals) approval(s) of the newest analysis\(spec.reviewers.map { "; reviewers asked: \($0.joined(separator: ", "))" } ?? "")")
            let newest = try lab.latestAnalysis(of: id)?.1
            if let newest {
                let approvers = state.countingApprovers(of: newest, author: spec.author)
                print("  newest analysis \(newest.prefix(16)): approved by \(approvers.isEmpty ? "nobody yet" : approvers.joined(separator: ", "))")
            }
            for objection in state.objections {
                let status: String = switch objection.state {
                case .open: "OPEN"
                case .resolved: "resolved"
                case let .overruled(by, reason, _): "overruled by \(by): \(reason)"
                }
                print("  objection #\(objection.entry.id ?? 0) by \(objection.entry.author): \(objection.entry.text) [\(status)]")
            }
            for entry in state.entries where entry.kind == .comment {
                print("  #\(entry.id ?? 0)\(entry.parent.map { " (re #\($0))" } ?? "") \(entry.author): \(entry.text)")
            }
        }
    }

    struct Comment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a comment, or answer an entry with --reply-to.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Experiment id.") var id: String
        @Option(help: "The text.") var text: String
        @Option(help: "The entry this answers.") var replyTo: Int64?
        func run() async throws {
            let entry = try await home.lab().comment(on: id, as: try person.resolved(), text: text, replyingTo: replyTo)
            print("comment #\(entry.id ?? 0) added to \(id)")
        }
    }

    struct Object: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Raise an objection: the decision waits until it is resolved or overruled.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Experiment id.") var id: String
        @Option(help: "What is wrong.") var text: String
        func run() async throws {
            let lab = try await home.lab()
            let entry = try await lab.object(to: id, as: try person.resolved(), text: text)
            await lab.webhooks.drain(within: .seconds(10))
            print("objection #\(entry.id ?? 0) raised on \(id); it blocks the decision until resolved or overruled")
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw your own objection.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Experiment id.") var id: String
        @Option(help: "The objection's number.") var objection: Int64
        @Option(help: "What settled it.") var text: String = "resolved"
        func run() async throws {
            try await home.lab().resolve(objection: objection, of: id, as: try person.resolved(), text: text)
            print("objection #\(objection) resolved")
        }
    }

    struct Overrule: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set someone else's objection aside; the reason is recorded as dissent on the decision.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Experiment id.") var id: String
        @Option(help: "The objection's number.") var objection: Int64
        @Option(help: "Why the objection does not block.") var reason: String
        func run() async throws {
            try await home.lab().overrule(objection: objection, of: id, as: try person.resolved(), reason: reason)
            print("objection #\(objection) overruled; the decision will record it as dissent")
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve the analysis you read (it must be the newest).")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Experiment id.") var id: String
        @Option(help: "The analysis id (at least 12 hex digits).") var analysis: String
        @Option(help: "A note.") var text: String = ""
        func run() async throws {
            let entry = try await home.lab().approve(id, as: try person.resolved(), analysis: analysis, text: text)
            print("\(entry.author) approved analysis \(entry.analysisHash?.prefix(16) ?? "") of \(id)")
        }
    }
}

struct PeopleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "people",
        abstract: "The people who act in the Lab, their teams, and their dashboard sign-in tokens.",
        subcommands: [Add.self, List.self, Token.self],
        defaultSubcommand: List.self
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a person with their team.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Their name (letters, digits, . _ -).") var name: String
        @Option(help: "Their team.") var team: String
        @Option(help: "How to reach them.") var contact: String
        @Flag(help: "Also issue a dashboard sign-in token, printed once.") var token = false
        func run() async throws {
            let lab = try await home.lab()
            let person = try await lab.addPerson(name, team: team, contact: contact)
            print("\(person.name) registered in team \(person.team)")
            if token { print("sign-in token (shown once): \(try await lab.issueSignInToken(for: name))") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered people.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        func run() async throws {
            let people = try await home.lab().registry.people()
            if output.json { return try printJSON(people) }
            for person in people { print("\(person.name)  team \(person.team)  \(person.contact)") }
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new dashboard sign-in token (the old one stops working).")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Their name.") var name: String
        func run() async throws {
            print(try await home.lab().issueSignInToken(for: name))
        }
    }
}

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
            try await home.lab().registry.setWebhook(id, active: false)
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
