import ArgumentParser
import DuetCommandLine
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
    enum Algorithm: String, ExpressibleByArgument, CaseIterable {
        case als, bpr, popularity
        case itemKNN = "item-knn"
    }

    @Option(help: "als, bpr, item-knn or popularity.") var algo: Algorithm = .als
    @OptionGroup var als: ALSOptions
    @Option(help: "BPR learning rate.") var learningRate: Float = 0.05
    @OptionGroup var knn: ItemKNNOptions

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
        case .itemKNN:
            return .itemKNN(try knn.configuration(threads: als.threads))
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
    @Option(help: "The registered bundle this one descends from (a refresh or a tuning of it); recorded as its parent.") var parent: String?
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
                                                    parent: parent, buildIndexes: !noIndex) { done, total, loss in
            bar.update(done)
            if showLoss, let loss { FileHandle.standardError.write(Data(String(format: "\niteration %d/%d loss %.6f\n", done, total, loss).utf8)) }
        }
        bar.finish()
        let seconds = (clock.now - started).seconds
        if output.json { return try printJSON(Result(bundle: bundleID, kind: model.kind, seconds: seconds, registered: register)) }
        let shape = model.itemNeighbours.map { "\($0.neighbours.count) neighbour pairs" } ?? "\(model.dimension) factors"
        print("trained \(model.kind) in \(String(format: "%.1f", seconds)) s: \(model.userCount) users, \(model.itemCount) items, \(shape)")
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
        comparison.textLines.forEach { print($0) }
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
        comparison.textLines.forEach { print($0) }
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
