import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct RecipeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recipe",
        abstract: "Recipes: how a model is made (algorithm, settings, data window, feedback), versioned in the registry.",
        discussion: """
            A recipe with --refresh may take the refresh lane (`duet lab refresh`): the same recipe retrained on \
            newer data, gated offline against production, then rolled out in stages. Without it, every model of \
            the recipe goes through an experiment. Changing a recipe stores a new version; bundles name theirs.
            """,
        subcommands: [Add.self, Train.self, List.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a recipe (a changed one becomes its next version).")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Recipe name, e.g. tracks-als.") var name: String
        @Option(help: "als, bpr or popularity.") var algo: String
        @Option(help: "A hyperparameter KEY=NUMBER, e.g. factors=48; repeatable.") var param: [String] = []
        @Option(help: "Days of events before the freeze to train on (default: all).") var windowDays: Int?
        @Option(help: "Event kinds to learn from, comma-separated (default: all but skip and dislike).") var kinds: String?
        @Option(help: "production (leave out feedback on lists production did not serve) or all.") var learnsFrom: String = FeedbackSource.production.rawValue
        @Flag(help: "Allow the refresh lane for this recipe.") var refresh = false
        @Option(help: "Refresh gate: ranking metric.") var gateMetric: String = "ndcg"
        @Option(help: "Refresh gate: tolerated drop of the metric (absolute).") var margin: Double = 0.01
        @Option(help: "Refresh gate: hours at the window's end held out to evaluate on.") var holdoutHours: Int = 24
        @Option(help: "Rollout stages, e.g. 5%,25%,100%.") var stages: String = "5%,25%,100%"
        @Option(help: "Minimum time at each partial stage, e.g. 1h.") var dwell: String = "1h"
        @Option(help: "Minimum candidate users at each partial stage.") var minUsers: Int = 200
        @Option(help: "Owning team (default: the actor's).") var team: String?
        @Option(help: "Owning team's contact (default: the actor's).") var contact: String?

        func run() async throws {
            let lab = try await home.lab()
            let author = try person.resolved()
            var hyperparameters: [String: Double] = [:]
            for text in param {
                let parts = text.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let value = Double(parts[1]) else { throw ValidationError("--param takes KEY=NUMBER, e.g. factors=48; got '\(text)'") }
                hyperparameters[String(parts[0])] = value
            }
            guard let source = FeedbackSource(rawValue: learnsFrom) else { throw ValidationError("--learns-from is production or all, not '\(learnsFrom)'") }
            let known = try await lab.registry.people().first { $0.name == author }
            let owner = (team ?? known?.team).map { Owner(team: $0, contact: contact ?? known?.contact ?? author) }
            let policy = refresh ? RefreshPolicy(metric: gateMetric, margin: margin, holdoutHours: holdoutHours,
                                                 stages: try RolloutStage.parse(stages, dwellSeconds: Int(try parseDuration(dwell, "--dwell").components.seconds),
                                                                                users: minUsers)) : nil
            let recipe = Recipe(name: name, algorithm: algo, hyperparameters: hyperparameters, windowDays: windowDays,
                                kinds: try parseKinds(kinds).map { $0.map(\.rawValue).sorted() }, learnsFrom: source, refresh: policy,
                                owner: owner, author: author, createdAt: Date().epochMillis)
            let stored = try await lab.saveRecipe(recipe)
            print("recipe \(stored.reference) stored\(stored.createdAt == recipe.createdAt ? "" : " (unchanged; the newest version stays)")")
            RecipeCommand.describe(stored)
        }
    }

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Train a recipe's model on a snapshot's split (the new-model lane's first step).")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Recipe name or name@version.") var recipe: String
        @Option(help: "Snapshot hash or prefix.") var snapshot: String = "latest"
        @Option(help: "Split id (train on its train part, so it can be evaluated).") var split: String
        @Option(help: "Bundle it was trained to beat (default: production, if any).") var parent: String?

        func run() async throws {
            let lab = try await home.lab()
            let stored = try await lab.recipe(recipe)
            let parentID: String? = if let parent { parent } else { try await lab.registry.production().model }
            let bundle = try await lab.train(recipe: stored, snapshot: snapshot, split: split, parent: parentID)
            print("bundle \(bundle) made by recipe \(stored.reference)\(parentID.map { ", parent \($0.prefix(12))" } ?? "")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Every recipe's newest version (--all for every version).")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Flag(help: "Every version, not only the newest.") var all = false

        func run() async throws {
            try await RecipeCommand.list(home: home, output: output, all: all)
        }
    }

    static func list(home: HomeOptions, output: OutputOptions, all: Bool) async throws {
        let lab = try await home.lab()
        var recipes = try await lab.registry.recipes()
        if !all { recipes = Dictionary(grouping: recipes, by: \.name).values.compactMap { $0.max { $0.version < $1.version } }.sorted { $0.name < $1.name } }
        if output.json { return try printJSON(recipes) }
        if recipes.isEmpty { print("no recipes yet; add one with `duet lab recipe add NAME --algo als …`") }
        for recipe in recipes { describe(recipe) }
    }

    static func describe(_ recipe: Recipe) {
        let settings = recipe.hyperparameters.sorted { $0.key < $1.key }.map { "\($0.key)=\(String(format: "%g", $0.value))" }.joined(separator: " ")
        print("\(recipe.reference): \(recipe.algorithm) \(settings)")
        print("  window \(recipe.windowDays.map { "\($0) days" } ?? "all events"), kinds \(recipe.kinds?.joined(separator: ",") ?? "all but negative"), learns from \(recipe.learnsFrom.rawValue) feedback")
        print("  owner \(recipe.owner.map { "\($0.team) (\($0.contact))" } ?? "—"), by \(recipe.author)")
        if let refresh = recipe.refresh {
            let stages = refresh.stages.map { String(format: "%g%%", $0.share * 100) }.joined(separator: " → ")
            print("  refresh lane: gate \(refresh.metric) margin \(refresh.margin) on the last \(refresh.holdoutHours) h; rollout \(stages), dwell \(refresh.stages[0].minimumDwellSeconds) s, \(refresh.stages[0].minimumUsers) users per stage")
        } else {
            print("  refresh lane: not allowed (new models go through an experiment)")
        }
    }
}

struct RecipesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recipes", abstract: "List recipes (the same as `duet lab recipe list`).")
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Flag(help: "Every version, not only the newest.") var all = false

    func run() async throws { try await RecipeCommand.list(home: home, output: output, all: all) }
}

struct LineageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lineage",
                                                    abstract: "A bundle and its ancestors: recipe, snapshot, what the freeze left out, parent.")
    @OptionGroup var home: HomeOptions
    @Argument(help: "Bundle id, prefix, name or 'production'.") var bundle: String = "production"

    func run() async throws {
        let steps = try await home.lab().lineage(bundle)
        for (depth, step) in steps.enumerated() {
            let model = step.model
            print("\(String(repeating: "  ", count: depth))\(model.id.prefix(12)) \(model.name) (\(model.kind), \(model.status.rawValue))")
            let indent = String(repeating: "  ", count: depth + 1)
            print("\(indent)recipe \(model.recipe ?? "none")\(step.recipe.map { ": \($0.algorithm), window \($0.windowDays.map { "\($0) days" } ?? "all")" } ?? "")")
            if let snapshot = step.snapshot {
                print("\(indent)snapshot \(snapshot.hash.prefix(12)): \(snapshot.users) users, \(snapshot.items) items, \(snapshot.interactions) interactions; \(snapshot.source)")
            } else {
                print("\(indent)snapshot \(model.snapshot.prefix(12)) (not in this home)")
            }
            if let separation = step.separation {
                let reasons = separation.excluded.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
                print("\(indent)learned from \(separation.learnsFrom.rawValue) feedback: kept \(separation.kept) events, left out \(separation.excludedTotal)\(reasons.isEmpty ? "" : " (\(reasons))")")
            }
            print("\(indent)parent \(model.parent.map { String($0.prefix(12)) } ?? "none")")
        }
    }
}

/// "400ms", "90s", "15m", "24h", "2d" (or plain seconds); `allowZero` for delays that may be 0.
func parseDuration(_ text: String, _ flag: String, allowZero: Bool = false) throws -> Duration {
    let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
    let unit = units.first { text.hasSuffix($0.suffix) }
    let digits = unit.map { String(text.dropLast($0.suffix.count)) } ?? text
    guard let value = Double(digits), value.isFinite, value > 0 || (allowZero && value == 0) else {
        throw ValidationError("\(flag) '\(text)' is not a duration; write e.g. 400ms, 90s, 15m, 24h or 2d")
    }
    return .milliseconds(Int64(value * (unit?.milliseconds ?? 1_000)))
}
