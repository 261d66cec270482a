import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetSimilarity
import DuetStore
import DuetTraining
import Foundation

struct PromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Move the production alias to a model, in one registry transaction.",
        discussion: """
            The bundle must verify. Without --override the model needs an offline evaluation against \
            current production that is not significantly worse on the primary metric, and a recorded \
            decision that ships it from an experiment whose control was current production (the first \
            promotion needs only an evaluation against popularity). --override --reason "…" bypasses \
            the evidence, and the override is recorded. The full list: `Promotion.swift` in DuetLab.
            """
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "Bundle id or prefix.") var model: String
    @Option(help: "Why; recorded in the history.") var reason: String?
    @Flag(help: "Bypass the evidence rules (needs --reason, which is recorded as the override).") var override = false
    @OptionGroup var person: ActorOptions
    @Option(help: "Offline metric whose significant regression blocks promotion.") var primaryMetric: String = "ndcg"
    @Option(help: "Refuse an evaluation or decision older than this many hours.") var maxEvidenceAge: Double?

    func run() async throws {
        if override, reason == nil { throw ValidationError("--override needs --reason \"…\"") }
        if let maxEvidenceAge, !(maxEvidenceAge > 0) { throw ValidationError("--max-evidence-age must be a positive number of hours") }
        let actor = try person.resolved()
        let why = reason ?? "promoted by \(actor)"
        let policy = PromotionPolicy(primaryMetric: primaryMetric, maxEvidenceAge: maxEvidenceAge.map { .milliseconds(Int64($0 * 3_600_000)) })
        let lab = try await home.lab()
        let change = try await lab.promote(model, actor: actor, reason: why, override: override ? why : nil, policy: policy)
        await lab.webhooks.drain(within: .seconds(10))
        if output.json { return try printJSON(change) }
        print("generation \(change.generation): production is now \(change.to.prefix(12))\(change.from.map { " (was \($0.prefix(12)))" } ?? "")")
        if let evaluation = change.evaluationID { print("  rests on evaluation #\(evaluation)\(change.decisionID.map { " and decision #\($0)" } ?? "")") }
        if change.overrideReason != nil { print("  override recorded: \(why)") }
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Move the production alias back one step, or --to a model that served before."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "Bundle to return to (default: the one before the current).") var to: String?
    @Option(help: "Why; recorded in the history.") var reason: String = "rollback"
    @OptionGroup var person: ActorOptions

    func run() async throws {
        let lab = try await home.lab()
        let change = try await lab.rollback(to: to, actor: try person.resolved(), reason: reason)
        await lab.webhooks.drain(within: .seconds(10))
        if output.json { return try printJSON(change) }
        print("generation \(change.generation): rolled back to \(change.to.prefix(12)) (was \(change.from?.prefix(12) ?? "none"))")
    }
}

struct RejectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reject",
        abstract: "Mark a candidate as rejected, so it can never be promoted (a production model is rolled back instead)."
    )
    @OptionGroup var home: HomeOptions
    @Argument(help: "Bundle id or prefix.") var model: String

    func run() async throws {
        let id = try await home.lab().reject(model)
        print("model \(id.prefix(12)) is rejected")
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "The production alias, change by change.")
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let history = try await home.lab().registry.history()
        if output.json { return try printJSON(history) }
        if history.isEmpty { print("nothing has been promoted yet") }
        for change in history {
            var line = "gen \(change.generation)  \(TimestampParser.iso8601String(change.changedAt))  \(change.action.rawValue)  "
            line += "\(change.from?.prefix(12) ?? "—") → \(change.to.prefix(12))  by \(change.actor): \(change.reason)"
            if let evaluation = change.evaluationID { line += "  [evaluation #\(evaluation)]" }
            if let decision = change.decisionID { line += "  [decision #\(decision)]" }
            if let override = change.overrideReason { line += "  [OVERRIDE: \(override)]" }
            print(line)
        }
    }
}

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "Registered models and their status.")
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let models = try await home.lab().registry.models()
        if output.json { return try printJSON(models) }
        if models.isEmpty { print("no registered models") }
        for model in models {
            print("\(model.id.prefix(12))  \(model.status.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0))  \(model.kind.padding(toLength: 10, withPad: " ", startingAt: 0))  \(model.name)  snapshot \(model.snapshot.prefix(12))")
        }
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "A model's manifest, status and evaluations.")
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "Bundle id, prefix or 'production'.") var model: String

    struct Result: Codable {
        var manifest: BundleManifest
        var record: ModelRecord?
        var evaluations: [EvaluationRecord]
    }

    func run() async throws {
        let lab = try await home.lab()
        let id = try await lab.resolveBundle(model)
        let bundle = try ModelBundle(folder: try lab.bundleFolder(id), verify: false)
        let result = Result(manifest: bundle.manifest, record: try await lab.registry.model(id),
                            evaluations: try await lab.registry.evaluations(candidate: id))
        if output.json { return try printJSON(result) }
        let manifest = result.manifest
        print("bundle \(id)")
        print("  \(manifest.name): \(manifest.modelKind), \(manifest.dimension) factors, status \(result.record?.status.rawValue ?? "unregistered")")
        if let parent = result.record?.parent { print("  descends from \(parent.prefix(12))") }
        print("  \(manifest.counts.users) users, \(manifest.counts.items) items, \(manifest.counts.interactions) training interactions")
        print("  snapshot \(manifest.snapshotHash.prefix(12)), created \(TimestampParser.iso8601String(manifest.createdAt))")
        print("  hyperparameters: " + manifest.hyperparameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        for index in manifest.indexes { print("  index \(index.name) v\(index.version) (\(index.kind), \(index.metric))") }
        for evaluation in result.evaluations {
            print("  evaluation #\(evaluation.id ?? 0) vs \(evaluation.baseline?.prefix(12) ?? "popularity") on split \(evaluation.split)\(evaluation.reportPath.map { ": \($0)" } ?? "")")
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every checksum of a bundle; exits non-zero naming the bad file."
    )
    @OptionGroup var home: HomeOptions
    @Argument(help: "Bundle id, prefix or 'production'.") var model: String

    func run() async throws {
        let lab = try await home.lab()
        let id = try await lab.resolveBundle(model)
        let bundle = try ModelBundle(folder: try lab.bundleFolder(id))
        print("bundle \(id) verified: manifest and \(bundle.manifest.files.count) files match their SHA-256")
    }
}
