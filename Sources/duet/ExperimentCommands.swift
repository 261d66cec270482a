import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct ExperimentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "A/B tests through Serve: create, start, stop, change phase, inspect.",
        subcommands: [Create.self, Start.self, Stop.self, Status.self, List.self, Phase.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a draft experiment. Every arm's bundle is verified first.",
            discussion: """
                Metrics: \(ExperimentMetric.allCases.map(\.rawValue).joined(separator: ", ")). \
                Guardrails take a relative non-inferiority margin, e.g. --guardrail skip_rate:0.02.
                """
        )
        @OptionGroup var home: HomeOptions
        @Option(help: "Experiment id.") var id: String
        @Option(help: "What you expect and why.") var hypothesis: String
        @Option(help: "Control bundle (default: production).") var control: String = "production"
        @Option(help: "Treatment bundle; repeat for several arms.") var treatment: [String]
        @Option(help: "Arm weights, comma-separated, control first (default: equal).") var weights: String?
        @Option(help: "Share of users in the experiment.") var coverage: Double = 1
        @Option(help: "Assignment hash seed (default: a random secret kept in the registry, so clients cannot steer their arm).") var seed: String?
        @Option(help: "Mutually exclusive experiments: NAMESPACE:START:END, e.g. home:0:0.5.") var namespace: String?
        @Option(help: "Success metrics, comma-separated.") var success: String = ExperimentMetric.playsPerUser.rawValue
        @Option(help: "Guardrail METRIC:MARGIN; repeatable.") var guardrail: [String] = []
        @Option(help: "Planned users per arm (fixed-horizon test).") var plannedSampleSize: Int?
        @Option(help: "Relative lift the test should detect (e.g. 0.02); the analysis reports the power reached and the days remaining (default 0.02).")
        var mde: Double?
        @Option(help: "Test sequentially with an always-valid confidence sequence tuned for N* users.") var sequential: Int?
        @OptionGroup var person: ActorOptions
        @Option(help: "The owning team (default: the author's team).") var team: String?
        @Option(help: "Whom to ask about it (default: the author's contact).") var contact: String?
        @Option(help: "Distinct approvals a decision needs, the author's excluded.") var approvals: Int = ExperimentSpec.defaultApprovals
        @Option(help: "People asked to review, comma-separated.") var reviewers: String?

        func run() async throws {
            let lab = try await home.lab()
            let bundles = [control] + treatment
            let weightValues: [Double]
            if let weights {
                weightValues = try weights.split(separator: ",").map {
                    guard let value = Double($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--weights '\($0)' is not a number") }
                    return value
                }
                guard weightValues.count == bundles.count else { throw ValidationError("--weights needs \(bundles.count) values (control first)") }
            } else {
                weightValues = Assignment.equalWeights(bundles.count)
            }
            let names = ["control"] + (treatment.count == 1 ? ["treatment"] : treatment.indices.map { "treatment\($0 + 1)" })
            let range = try ExperimentFlags.namespace(namespace)
            let successMetrics = try success.split(separator: ",").map { try ExperimentMetric.named(String($0)).rawValue }
            let guardrails = try ExperimentFlags.guardrails(guardrail)
            let arms = zip(zip(names, bundles), weightValues).map { ExperimentArm(name: $0.0, bundleID: $0.1, weight: $1) }
            let author = try person.resolved()
            let known = try await lab.registry.people().first { $0.name == author }
            var owner: Owner?
            if let team = team ?? known?.team { owner = Owner(team: team, contact: contact ?? known?.contact ?? author) }
            let spec = ExperimentSpec(id: id, hypothesis: hypothesis, arms: arms, coverage: coverage, seed: seed, namespace: range,
                                      successMetrics: successMetrics, guardrails: guardrails, plannedSampleSize: plannedSampleSize,
                                      sequentialTuning: sequential, minimumDetectableEffect: mde, owner: owner, author: author,
                                      approvalsRequired: approvals,
                                      reviewers: reviewers.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } })
            try spec.validate()
            try await lab.createExperiment(spec)
            print("experiment \(id) created as a draft: \(arms.map { "\($0.name) \(Int($0.weight * 100))%" }.joined(separator: " / ")); start it with `duet lab experiment start \(id)`")
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start an experiment; Serve picks it up at its next poll.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Experiment id.") var id: String
        func run() async throws {
            let lab = try await home.lab()
            try await lab.start(experiment: id)
            await lab.webhooks.drain(within: .seconds(10))
            print("experiment \(id) is running")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop an experiment; it stops affecting serving at Serve's next poll, and its final analysis is written.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Experiment id.") var id: String
        func run() async throws {
            let lab = try await home.lab()
            let final = try await lab.stop(experiment: id, eventLog: try await home.openEventLog())
            await lab.webhooks.drain(within: .seconds(10))
            print("experiment \(id) stopped")
            if let final { print("  final analysis \(final.hash): \(final.report.recommendation.rawValue)\n  report: \(final.htmlPath.path)") }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An experiment's spec, phases and decisions.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Experiment id.") var id: String

        struct Result: Codable {
            var experiment: ExperimentRecord
            var phases: [ExperimentPhase]
            var decisions: [StoredDecision]
        }

        func run() async throws {
            let registry = try await home.lab().registry
            guard let record = try await registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
            let result = Result(experiment: record, phases: try await registry.phases(of: id), decisions: try await registry.decisions(experiment: id))
            if output.json { return try printJSON(result) }
            let spec = record.spec
            print("experiment \(spec.id): \(spec.status.rawValue), phase \(record.phase)")
            print("  hypothesis: \(spec.hypothesis)")
            for arm in spec.arms { print("  arm \(arm.name): \(Int((arm.weight * 100).rounded()))% → \(arm.bundleID.prefix(12))") }
            print("  assignment seed \(spec.seed) (secret: with it, clients could choose their arm)")
            print("  coverage \(spec.coverage), success \(spec.successMetrics.joined(separator: ", ")), guardrails \(spec.guardrails.map { "\($0.metric) ±\($0.margin)" }.joined(separator: ", "))")
            for phase in result.phases { print("  phase \(phase.phase) from \(TimestampParser.iso8601String(phase.startedAt)): \(phase.reason)") }
            for stored in result.decisions {
                print("  decision #\(stored.id): \(stored.decision.outcome.rawValue) by \(stored.decision.reviewer): \(stored.decision.reason)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "All experiments.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        func run() async throws {
            let experiments = try await home.lab().registry.experiments()
            if output.json { return try printJSON(experiments) }
            if experiments.isEmpty { print("no experiments") }
            for record in experiments { print("\(record.spec.id)  \(record.spec.status.rawValue)  phase \(record.phase)  \(record.spec.hypothesis)") }
        }
    }

    struct Phase: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change weights (or coverage) of a running experiment: a new phase, recorded with its reason.",
            discussion: "Analysis uses one phase at a time, so users exposed under old weights never mix with new ones."
        )
        @OptionGroup var home: HomeOptions
        @Argument(help: "Experiment id.") var id: String
        @Option(help: "New weights, comma-separated, control first.") var weights: String?
        @Option(help: "New coverage.") var coverage: Double?
        @Option(help: "Why the experiment changes.") var reason: String

        func run() async throws {
            let lab = try await home.lab()
            guard let record = try await lab.registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
            var spec = record.spec
            if let weights {
                let values = weights.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard values.count == spec.arms.count else { throw ValidationError("--weights needs \(spec.arms.count) numbers") }
                for index in spec.arms.indices { spec.arms[index].weight = values[index] }
            }
            if let coverage { spec.coverage = coverage }
            try await lab.changePhase(of: id, to: spec, reason: reason)
            print("experiment \(id) is in phase \(record.phase + 1): \(reason)")
        }
    }
}
