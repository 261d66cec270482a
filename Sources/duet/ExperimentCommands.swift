import ArgumentParser
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
        @Option(help: "Hash seed (default: the id).") var seed: String?
        @Option(help: "Mutually exclusive experiments: NAMESPACE:START:END, e.g. home:0:0.5.") var namespace: String?
        @Option(help: "Success metrics, comma-separated.") var success: String = ExperimentMetric.playsPerUser.rawValue
        @Option(help: "Guardrail METRIC:MARGIN; repeatable.") var guardrail: [String] = []
        @Option(help: "Planned users per arm (fixed-horizon test).") var plannedSampleSize: Int?
        @Option(help: "Test sequentially with an always-valid confidence sequence tuned for N* users.") var sequential: Int?

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
            var range: NamespaceRange?
            if let namespace {
                let parts = namespace.split(separator: ":")
                guard parts.count == 3, let start = Double(parts[1]), let end = Double(parts[2]) else {
                    throw ValidationError("--namespace takes NAME:START:END, e.g. home:0:0.5")
                }
                range = NamespaceRange(id: String(parts[0]), start: start, end: end)
            }
            let successMetrics = try success.split(separator: ",").map { try ExperimentMetric.named(String($0)).rawValue }
            let guardrails = try guardrail.map { text -> GuardrailMetric in
                let parts = text.split(separator: ":")
                guard parts.count == 2, let margin = Double(parts[1]) else { throw ValidationError("--guardrail takes METRIC:MARGIN, e.g. skip_rate:0.02") }
                return GuardrailMetric(metric: try ExperimentMetric.named(String(parts[0])).rawValue, margin: margin)
            }
            let arms = zip(zip(names, bundles), weightValues).map { ExperimentArm(name: $0.0, bundleID: $0.1, weight: $1) }
            let spec = ExperimentSpec(id: id, hypothesis: hypothesis, arms: arms, coverage: coverage, seed: seed, namespace: range,
                                      successMetrics: successMetrics, guardrails: guardrails, plannedSampleSize: plannedSampleSize,
                                      sequentialTuning: sequential)
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
            guard let record = try await lab.registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
            for arm in record.spec.arms { _ = try ModelBundle(folder: lab.bundleFolder(arm.bundleID)) }
            try await lab.registry.start(experiment: id)
            print("experiment \(id) is running")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop an experiment; it stops affecting serving at Serve's next poll.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Experiment id.") var id: String
        func run() async throws {
            try await home.lab().registry.stop(experiment: id)
            print("experiment \(id) stopped")
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
            let registry = try await home.lab().registry
            guard let record = try await registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
            var spec = record.spec
            if let weights {
                let values = weights.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard values.count == spec.arms.count else { throw ValidationError("--weights needs \(spec.arms.count) numbers") }
                for index in spec.arms.indices { spec.arms[index].weight = values[index] }
            }
            if let coverage { spec.coverage = coverage }
            try await registry.changePhase(of: id, to: spec, reason: reason)
            print("experiment \(id) is in phase \(record.phase + 1): \(reason)")
        }
    }
}

struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyse an experiment from a frozen read of the event log; writes JSON and a self-contained HTML report."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "Experiment id.") var id: String
    @Option(help: "Phase to analyse (default: the current one).") var phase: Int?
    @Flag(inversion: .prefixedEnableDisable, help: "Exclude exposures inside recorded incident windows.") var incidentExclusion = true
    @Option(help: "Hours after a user's last exposure during which feedback without a requestId is attributed.") var attributionHours: Double = 24

    func run() async throws {
        let lab = try await home.lab()
        let log = try await home.openEventLog()
        let stored = try await lab.analyze(experiment: id, phase: phase, excludeIncidents: incidentExclusion,
                                           attributionHours: attributionHours, eventLog: log)
        if output.json { return try printJSON(stored.report) }
        printAnalysis(stored.report)
        print("  analysis \(stored.hash.prefix(16))…")
        print("  report: \(stored.htmlPath.path)")
    }
}

func printAnalysis(_ report: ExperimentAnalysisReport) {
    print("experiment \(report.experiment), phase \(report.phase): recommendation \(report.recommendation.rawValue.uppercased())")
    for reason in report.reasons { print("  - \(reason)") }
    print(String(format: "  SRM: χ² = %.3f, p = %.3g%@", report.srm.chiSquared, report.srm.pValue, report.srm.detected ? "  MISMATCH" : " (ok)"))
    for arm in report.arms {
        print("  arm \(arm.arm): \(arm.users) users, \(arm.exposures) exposures, \(arm.fallbackExposures) served by fallback")
    }
    for metric in report.metrics {
        let effect = metric.decisive
        var line = "  \(metric.role) \(metric.metric) [\(metric.arm)]: " + String(format: "%.4f → %.4f, Δ %+.4f [%+.4f, %+.4f]",
                                                                                     metric.controlValue, metric.treatmentValue, effect.estimate, effect.lower, effect.upper)
        if metric.cuped != nil { line += " (CUPED)" }
        if let relative = metric.relative { line += String(format: ", lift %+.1f%%", relative.estimate * 100) }
        if let ni = metric.nonInferiority { line += ni.nonInferior ? ", non-inferior" : ", NOT shown non-inferior" } else { line += ", \(metric.verdict)" }
        print(line)
    }
    for incident in report.incidents { print("  incident: \(incident)") }
}

struct DecideCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide",
        abstract: "Record a reviewed decision resting on the experiment's latest analysis.",
        discussion: "Deciding against the analysis' recommendation needs --override \"why\", which is recorded."
    )
    @OptionGroup var home: HomeOptions
    @Argument(help: "Experiment id.") var id: String
    @Option(help: "ship, no-ship, inconclusive or abandon.") var outcome: String
    @Option(help: "The arm shipped (default: the best treatment).") var arm: String?
    @Option(help: "Who reviewed the evidence.") var reviewer: String
    @Option(help: "Why.") var reason: String
    @Option(help: "Reason for deciding against the recommendation.") var override: String?

    func run() async throws {
        guard let chosen = DecisionOutcome(rawValue: outcome) else {
            throw ValidationError("--outcome must be one of \(DecisionOutcome.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let lab = try await home.lab()
        let (id, decision) = try await lab.decide(experiment: self.id, outcome: chosen, arm: arm, reviewer: reviewer, reason: reason,
                                                  overrideReason: override)
        print("decision #\(id) recorded: \(decision.outcome.rawValue)\(decision.arm.map { " (arm \($0))" } ?? "") by \(decision.reviewer), resting on analysis \(decision.analysisHash.prefix(16))…")
        if decision.overrideReason != nil { print("  override recorded: \(decision.overrideReason!)") }
    }
}

struct IncidentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incident",
        abstract: "Record serving incidents, so analyses exclude (or show) the exposures inside them.",
        subcommands: [Add.self, List.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record an incident window.")
        @OptionGroup var home: HomeOptions
        @Option(help: "Start (ISO 8601 or epoch seconds).") var from: String
        @Option(help: "End (ISO 8601 or epoch seconds).") var to: String
        @Option(help: "What happened.") var reason: String
        func run() async throws {
            let incident = Incident(from: try parseTime(from, "--from")!, until: try parseTime(to, "--to")!, reason: reason, createdAt: Date().epochMillis)
            let id = try await home.lab().registry.add(incident)
            print("incident #\(id) recorded")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List incident windows.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        func run() async throws {
            let incidents = try await home.lab().registry.incidents()
            if output.json { return try printJSON(incidents) }
            if incidents.isEmpty { print("no incidents") }
            for incident in incidents {
                print("#\(incident.id ?? 0)  \(TimestampParser.iso8601String(incident.from)) – \(TimestampParser.iso8601String(incident.until))  \(incident.source): \(incident.reason)")
            }
        }
    }
}

struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Simulated listeners from a synthetic world, driving a running `duet serve` over HTTP.",
        discussion: "Each listener asks for recommendations and plays, skips or saves items as the world's ground truth says."
    )
    @Option(help: "The world folder (from `duet world generate`).") var world: String
    @Option(help: "Serve's base URL.") var url: String = "http://127.0.0.1:8080"
    @Option(help: "Listeners to simulate.") var users: Int = 1_000
    @Option(help: "Recommendation requests per listener.") var requestsPerUser: Int = 3
    @Option(help: "Items per list.") var listSize: Int = 10
    @Option(help: "Concurrent listeners.") var concurrency: Int = 8
    @Option(help: "Random seed of the listeners' choices.") var seed: UInt64 = 7
    @Option(help: "API key for POST /v1/events.") var apiKey: String?
    @OptionGroup var output: OutputOptions

    func run() async throws {
        guard let base = URL(string: url), base.scheme == "http" || base.scheme == "https" else { throw ValidationError("--url must be an http(s) URL") }
        let data = try Data(contentsOf: URL(fileURLWithPath: world).appendingPathComponent(WorldFiles.spec))
        let summary = try JSONDecoder().decode(WorldSummary.self, from: data)
        var configuration = ListenerSimulator.Configuration(baseURL: base)
        configuration.users = users
        configuration.requestsPerUser = requestsPerUser
        configuration.listSize = listSize
        configuration.concurrency = concurrency
        configuration.seed = seed
        configuration.apiKey = apiKey
        let bar = ProgressBar("simulating", total: users, unit: "listeners", quiet: output.json)
        let report = try await ListenerSimulator(world: try World(spec: summary.spec), configuration: configuration).run { bar.update($0) }
        bar.finish()
        if output.json { return try printJSON(report) }
        print("\(report.requests) requests in \(String(format: "%.1f", report.seconds)) s: \(report.non2xx) non-2xx, \(report.transportErrors) transport errors")
        print("  \(report.plays) plays, \(report.skips) skips, \(report.saves) saves; \(report.eventsAcknowledged)/\(report.eventsPosted) events acknowledged")
        print(String(format: "  recommendation latency p50 %.2f ms, p99 %.2f ms", report.latencyP50Millis, report.latencyP99Millis))
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Compute an analysis from per-arm aggregates in the stats-cases.json format (any subset of its sections).",
        discussion: "Prints the same structure with each case's \"expected\" replaced by the computed values."
    )
    @Argument(help: "The JSON file.") var file: String
    @OptionGroup var output: OutputOptions

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw DuetError.fileNotFound(path: file) }
        let computed: [String: Any]
        do { computed = try StatsCases.compute(data) } catch let error as DuetError { throw error } catch {
            throw DuetError.invalidValue(field: file, reason: "not valid JSON (\(error.localizedDescription))")
        }
        let json = try JSONSerialization.data(withJSONObject: computed, options: output.json ? [.sortedKeys] : [.sortedKeys, .prettyPrinted])
        print(String(decoding: json, as: UTF8.self))
    }
}
