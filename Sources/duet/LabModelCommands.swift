import ArgumentParser
import DuetCore
import DuetLab
import DuetSimilarity
import DuetStore
import DuetTraining
import Foundation

struct SplitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split",
        abstract: "Divide a snapshot into train and test: random by hashed pair, leave-last-N per user, or a time cut-off."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "Snapshot: hash, prefix, 'latest' or a .dsnap path.") var snapshot: String = "latest"
    @Option(help: "Share of (user, item) pairs held out at random, by a seeded hash of the pair.") var testFraction: Double?
    @Option(help: "Hold out each user's last N interactions by time.") var leaveLast: Int?
    @Option(help: "Hold out everything at or after this time (ISO 8601 or epoch seconds).") var cutoff: String?
    @Option(help: "Seed of the random split.") var seed: UInt64 = 42

    func run() async throws {
        let chosen = [testFraction != nil, leaveLast != nil, cutoff != nil].filter { $0 }.count
        guard chosen <= 1 else { throw ValidationError("choose one of --test-fraction, --leave-last and --cutoff") }
        let method: SplitMethod
        if let leaveLast { method = .leaveLastN(count: leaveLast) }
        else if let cutoff { method = .temporal(cutoff: try parseTime(cutoff, "--cutoff")!) }
        else { method = .random(testFraction: testFraction ?? 0.2, seed: seed) }
        let lab = try await home.lab()
        let record = try lab.split(snapshot: snapshot, method: method)
        if output.json { return try printJSON(record) }
        print("split \(record.id) of snapshot \(record.snapshot.prefix(12)): \(record.method)")
        print("  \(record.train) train, \(record.test) test interactions")
    }
}

/// Flags of `lab train` that pick and tune the algorithm.
struct AlgorithmOptions: ParsableArguments {
    enum Algorithm: String, ExpressibleByArgument, CaseIterable { case als, bpr, popularity }

    @Option(help: "als, bpr or popularity.") var algo: Algorithm = .als
    @OptionGroup var als: ALSOptions
    @Option(help: "BPR learning rate.") var learningRate: Float = 0.05

    func algorithm() throws -> TrainingAlgorithm {
        switch algo {
        case .als:
            return .als(try als.configuration())
        case .bpr:
            var configuration = BPRConfiguration()
            configuration.factors = als.factors
            configuration.iterations = als.iterations
            configuration.learningRate = learningRate
            configuration.regularization = als.regularization
            configuration.seed = als.seed
            configuration.threads = als.threads
            try configuration.validate()
            return .bpr(configuration)
        case .popularity:
            return .popularity
        }
    }
}

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model on a snapshot (or a split's train part) and write an immutable bundle.",
        discussion: "With --register the bundle becomes a candidate in the registry, ready for `duet lab evaluate`."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "Snapshot: hash, prefix, 'latest' or a .dsnap path.") var snapshot: String = "latest"
    @Option(help: "Train on this split's train part, holding its test part out for evaluation.") var split: String?
    @Option(help: "A name for people (the id is the bundle's hash).") var name: String?
    @Flag(help: "Register the bundle as a candidate.") var register = false
    @Flag(help: "Skip the HNSW indexes (Serve then scans exactly); saves time on huge catalogues.") var noIndex = false
    @OptionGroup var algorithm: AlgorithmOptions

    struct Result: Codable {
        var bundle: String
        var kind: String
        var seconds: Double
        var registered: Bool
    }

    func run() async throws {
        let lab = try await home.lab()
        let chosen = try algorithm.algorithm()
        let bar = ProgressBar("training \(chosen.name)", total: algorithm.als.iterations, unit: "it", quiet: output.json)
        let showLoss = algorithm.als.loss && !output.json
        let clock = ContinuousClock()
        let started = clock.now
        let (bundleID, model) = try await lab.train(snapshot: snapshot, split: split, algorithm: chosen,
                                                    name: name ?? "\(chosen.name)-\(Date().epochMillis / 1000)", register: register,
                                                    buildIndexes: !noIndex) { done, total, loss in
            bar.update(done)
            if showLoss, let loss { FileHandle.standardError.write(Data(String(format: "\niteration %d/%d loss %.6f\n", done, total, loss).utf8)) }
        }
        bar.finish()
        let seconds = (clock.now - started).seconds
        if output.json { return try printJSON(Result(bundle: bundleID, kind: model.kind, seconds: seconds, registered: register)) }
        print("trained \(model.kind) in \(String(format: "%.1f", seconds)) s: \(model.userCount) users, \(model.itemCount) items, \(model.dimension) factors")
        print("bundle \(bundleID)\(register ? " (registered as a candidate)" : "")")
    }
}

struct EvaluateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Compare a candidate with a baseline on the candidate's held-out split, with paired bootstrap CIs.",
        discussion: "The evaluation is stored in the registry; promotion rests on it."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "Candidate bundle (id or prefix).") var candidate: String
    @Option(help: "'production', 'popularity' or a bundle id.") var baseline: String = "production"
    @Option(help: "Cut-off of the ranking metrics.") var k: Int = 10
    @Option(help: "Bootstrap resamples.") var resamples: Int = 1_000
    @Option(help: "Worker threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() async throws {
        guard k > 0 else { throw ValidationError("--k must be positive") }
        let lab = try await home.lab()
        let (comparison, id) = try await lab.evaluate(candidate: candidate, baseline: baseline, k: k, resamples: resamples, threads: threads)
        if output.json { return try printJSON(comparison) }
        printComparison(comparison)
        if let id { print("stored as evaluation #\(id)") } else { print("not stored: the candidate is not registered (train with --register)") }
    }
}

struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Like evaluate, but only prints: nothing is stored."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "Candidate bundle.") var candidate: String
    @Argument(help: "Baseline: 'production', 'popularity' or a bundle.") var baseline: String
    @Option(help: "Cut-off of the ranking metrics.") var k: Int = 10

    func run() async throws {
        let lab = try await home.lab()
        let (comparison, _) = try await lab.evaluate(candidate: candidate, baseline: baseline, k: k,
                                                     threads: ProcessInfo.processInfo.activeProcessorCount, store: false)
        if output.json { return try printJSON(comparison) }
        printComparison(comparison)
    }
}

func printComparison(_ comparison: OfflineComparison) {
    let c = comparison.candidateMetrics, b = comparison.baselineMetrics
    print("offline evaluation on snapshot \(comparison.snapshot.prefix(12)), split \(comparison.split), \(c.users) test users, k=\(c.k)")
    print("  candidate \(comparison.candidate.prefix(12)) vs baseline \(comparison.baseline.prefix(12)) (\(comparison.baselineKind))")
    print("  metric        baseline  candidate  difference [95% CI]")
    for difference in comparison.differences {
        let verdict = difference.isSignificant ? (difference.difference > 0 ? "better" : "worse") : "no clear difference"
        let name = difference.metric.padding(toLength: 12, withPad: " ", startingAt: 0)
        print("  \(name)" + String(format: " %9.4f  %9.4f  %+.4f [%+.4f, %+.4f]  ", difference.baseline, difference.candidate,
                                           difference.difference, difference.lower, difference.upper) + verdict)
    }
    print(String(format: "  coverage %.3f → %.3f, novelty %.2f → %.2f bits", b.coverage, c.coverage, b.novelty, c.novelty))
    for warning in comparison.warnings { print("  warning: \(warning)") }
}

struct PromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Move the production alias to a model, in one registry transaction.",
        discussion: """
            Refused unless the model has an offline evaluation against current production and a recorded \
            decision that ships it (the first promotion needs only an evaluation against popularity). \
            --override --reason "…" bypasses this, and the override is recorded.
            """
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "Bundle id or prefix.") var model: String
    @Option(help: "Why; recorded in the history.") var reason: String?
    @Flag(help: "Bypass the evidence rules (needs --reason, which is recorded as the override).") var override = false
    @Option(help: "Who is promoting (default: $USER).") var actor: String = ProcessInfo.processInfo.environment["USER"] ?? "unknown"

    func run() async throws {
        if override, reason == nil { throw ValidationError("--override needs --reason \"…\"") }
        let lab = try await home.lab()
        let id = try await lab.resolveBundle(model)
        // Verify before the alias can point at it: Serve must never be asked to load a broken bundle.
        _ = try ModelBundle(folder: lab.bundleFolder(id))
        let expected = try await lab.registry.production().generation
        let why = reason ?? "promoted by \(actor)"
        let change = try await lab.registry.promote(id, actor: actor, reason: why,
                                                    evidence: override ? .override(reason: why) : .rules, expectedGeneration: expected)
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
    @Option(help: "Who is rolling back (default: $USER).") var actor: String = ProcessInfo.processInfo.environment["USER"] ?? "unknown"

    func run() async throws {
        let lab = try await home.lab()
        let target = try await to.asyncMap { try await lab.resolveBundle($0) }
        if let target { _ = try ModelBundle(folder: lab.bundleFolder(target)) }
        let expected = try await lab.registry.production().generation
        let change = try await lab.registry.rollback(to: target, actor: actor, reason: reason, expectedGeneration: expected)
        if output.json { return try printJSON(change) }
        print("generation \(change.generation): rolled back to \(change.to.prefix(12)) (was \(change.from?.prefix(12) ?? "none"))")
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
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
        let bundle = try ModelBundle(folder: lab.bundleFolder(id), verify: false)
        let result = Result(manifest: bundle.manifest, record: try await lab.registry.model(id),
                            evaluations: try await lab.registry.evaluations(candidate: id))
        if output.json { return try printJSON(result) }
        let manifest = result.manifest
        print("bundle \(id)")
        print("  \(manifest.name): \(manifest.modelKind), \(manifest.dimension) factors, status \(result.record?.status.rawValue ?? "unregistered")")
        print("  \(manifest.counts.users) users, \(manifest.counts.items) items, \(manifest.counts.interactions) training interactions")
        print("  snapshot \(manifest.snapshotHash.prefix(12)), created \(TimestampParser.iso8601String(manifest.createdAt))")
        print("  hyperparameters: " + manifest.hyperparameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        for index in manifest.indexes { print("  index \(index.name) v\(index.version) (\(index.kind), \(index.metric))") }
        for evaluation in result.evaluations {
            print("  evaluation #\(evaluation.id ?? 0) vs \(evaluation.baseline?.prefix(12) ?? "popularity") on split \(evaluation.split)")
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
        let bundle = try ModelBundle(folder: lab.bundleFolder(id))
        print("bundle \(id) verified: manifest and \(bundle.manifest.files.count) files match their SHA-256")
    }
}

struct TuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Search ALS hyperparameters on a validation part carved from the split's train part (never its test part).",
        discussion: "Reports the best configuration, then the test NDCG of the default and of the best, each trained on the full train part."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "The split to tune on.") var split: String
    @Option(help: "Configurations to try.") var trials: Int = 12
    @Option(help: "random or grid.") var search: String = "random"
    @Option(help: "Random seed.") var seed: UInt64 = 42
    @Option(help: "Worker threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() async throws {
        guard let strategy = SearchStrategy(rawValue: search) else { throw ValidationError("--search must be random or grid") }
        let lab = try await home.lab()
        let bar = ProgressBar("tuning", total: trials, unit: "trials", quiet: output.json)
        let report = try lab.tune(split: split, trials: trials, strategy: strategy, seed: seed, threads: threads) { done, _, _ in bar.update(done) }
        bar.finish()
        if output.json { return try printJSON(report) }
        for trial in report.trials.sorted(by: { $0.validationNDCG > $1.validationNDCG }).prefix(5) {
            let c = trial.configuration
            print(String(format: "  validation ndcg@%d %.4f  factors %d  regularization %.3g  alpha %.3g  iterations %d  %@",
                         report.k, trial.validationNDCG, c.factors, c.regularization, c.alpha, c.iterations, c.weighting.rawValue))
        }
        let b = report.best
        print("best: --factors \(b.factors) --regularization \(b.regularization) --alpha \(b.alpha) --iterations \(b.iterations) --weighting \(b.weighting.rawValue)")
        print(String(format: "test ndcg@%d: default %.4f, best %.4f (%+.4f)", report.k, report.defaultTestNDCG, report.bestTestNDCG,
                     report.bestTestNDCG - report.defaultTestNDCG))
    }
}

struct SimilarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "similar",
        abstract: "Items most similar to an item in a bundle, with names from its catalogue: a quick look at what a model learned."
    )
    @OptionGroup var home: HomeOptions
    @Option(help: "Bundle id, prefix or 'production' (or a bundle folder path).") var factors: String = "production"
    @Option(help: "Item id.") var item: String
    @Option(name: .short, help: "How many.") var n: Int = 10
    @Option(help: "Index name (default: the bundle's cosine index, else exact).") var index: String?
    @Option(help: "Skip items with fewer training users than this.") var minUsers: Int = 5

    func run() async throws {
        guard n > 0, n <= 1_000 else { throw ValidationError("-n must be 1…1000") }
        let folder: URL
        if FileManager.default.fileExists(atPath: (factors as NSString).appendingPathComponent(BundleFiles.manifest)) {
            folder = URL(fileURLWithPath: factors)
        } else {
            let lab = try await home.lab()
            folder = lab.bundleFolder(try await lab.resolveBundle(factors))
        }
        let bundle = try ModelBundle(folder: folder)
        guard let row = bundle.itemIndex(of: item) else { throw DuetError.notFound(kind: "item in bundle \(bundle.id.prefix(12))", id: item) }
        guard bundle.dimension > 0 else { throw DuetError.refused("bundle \(bundle.id.prefix(12)) has no factors (\(bundle.manifest.modelKind))") }
        let neighbours = try SimilarItems.search(bundle: bundle, item: row, n: n, index: index, minimumUsers: minUsers)
        print("similar to \(bundle.catalog[item]?.displayName ?? item) (\(neighbours.index)):")
        for (rank, neighbour) in neighbours.items.enumerated() {
            let id = bundle.itemIDs[neighbour.id]
            print(String(format: "%3d. %@  (%.3f)", rank + 1, bundle.catalog[id]?.displayName ?? id, neighbour.score))
        }
    }
}
