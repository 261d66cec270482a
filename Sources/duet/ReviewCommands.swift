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

struct DecideCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide",
        abstract: "Record a reviewed decision resting on the analysis it names.",
        discussion: "--analysis names the analysis the reviewer read (its id, or at least 12 characters of it); it must be the experiment's newest. The decision needs the approvals the experiment requires (of that analysis, its author's excluded) and no open objection: see `duet lab review`. Deciding against the analysis' recommendation needs --override \"why\", which is recorded."
    )
    @OptionGroup var home: HomeOptions
    @Argument(help: "Experiment id.") var id: String
    @Option(help: "ship, no-ship, inconclusive or abandon.") var outcome: String
    @Option(help: "The arm shipped (default: the best treatment).") var arm: String?
    @OptionGroup var person: ActorOptions
    @Option(help: "Why.") var reason: String
    @Option(help: "Reason for deciding against the recommendation.") var override: String?
    @Option(help: "The analysis id the decision rests on (printed by `duet lab analyze`).") var analysis: String

    func run() async throws {
        guard let chosen = DecisionOutcome(rawValue: outcome) else {
            throw ValidationError("--outcome must be one of \(DecisionOutcome.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let lab = try await home.lab()
        let (id, decision) = try await lab.decide(experiment: self.id, outcome: chosen, arm: arm, reviewer: try person.resolved(), reason: reason,
                                                  overrideReason: override, shown: analysis)
        await lab.webhooks.drain(within: .seconds(10))
        print("decision #\(id) recorded: \(decision.outcome.rawValue)\(decision.arm.map { " (arm \($0))" } ?? "") by \(decision.reviewer), resting on analysis \(decision.analysisHash.prefix(16))…")
        print("  approved by \(decision.approvers.isEmpty ? "nobody (none required)" : decision.approvers.joined(separator: ", "))")
        decision.dissent.forEach { print("  dissent: objection #\($0.objection) by \($0.author) (\"\($0.text)\"), overruled by \($0.overruledBy): \($0.reason)") }
        if decision.overrideReason != nil { print("  override recorded: \(decision.overrideReason!)") }
    }
}
