import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct AnalyzeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Analyse an experiment from a frozen read of the event log; writes JSON and a self-contained HTML report."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Argument(help: "Experiment id.") var id: String
    @Option(help: "Phase to analyse (default: the current one).") var phase: Int?
    @Flag(inversion: .prefixedEnableDisable, help: "Exclude exposures and feedback inside recorded incident windows and fallback bursts.")
    var incidentExclusion = true
    @Option(help: "Hours after a user's last exposure during which feedback without a requestId is attributed.") var attributionHours: Double = 24
    @Option(help: "Multiple-testing correction across success metrics × arms: holm (family-wise) or bh (false discovery rate).")
    var correction: String = "holm"
    @Option(help: "Days before the experiment's first start whose feedback is CUPED's covariate (0: no CUPED).") var cupedDays: Int = 14

    func run() async throws {
        guard let chosen = MultipleTestingCorrection(rawValue: correction) else {
            throw ValidationError("--correction must be one of \(MultipleTestingCorrection.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let lab = try await home.lab()
        let log = try await home.openEventLog()
        let stored = try await lab.analyze(experiment: id, phase: phase, excludeIncidents: incidentExclusion,
                                           attributionHours: attributionHours, correction: chosen, cupedDays: cupedDays, eventLog: log)
        if output.json { return try printJSON(stored.report) }
        stored.report.textLines.forEach { print($0) }
        print("  analysis \(stored.hash)")
        print("  report: \(stored.htmlPath.path)")
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
            let id = try await home.lab().record(incident)
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
        discussion: "Each listener asks for recommendations and plays, skips or saves items as the world's ground truth says. $DUET_API_KEY, when set, is sent on every request."
    )
    @Option(help: "The world folder (from `duet world generate`).") var world: String
    @Option(help: "Serve's base URL.") var url: String = "http://127.0.0.1:8080"
    @Option(help: "Listeners to simulate.") var users: Int = 1_000
    @Option(help: "Recommendation requests per listener.") var requestsPerUser: Int = 3
    @Option(help: "Items per list.") var listSize: Int = 10
    @Option(help: "Concurrent listeners.") var concurrency: Int = 8
    @Option(help: "Random seed of the listeners' choices.") var seed: UInt64 = 7
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
        // From the environment, not a flag, so `ps` never shows it.
        configuration.apiKey = ProcessInfo.processInfo.environment["DUET_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
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

struct PowerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "power",
        abstract: "Plan an experiment: users and days needed to detect a lift, from the event log's recent history.",
        discussion: """
            The metric's per-user mean and variance come from the --days before --until (default: now); \
            the days needed follow how many distinct users arrived day by day in that window. Two-sided \
            tests of control against each treatment, Bonferroni across treatments.
            """
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "Metric: \(ExperimentMetric.allCases.map(\.rawValue).joined(separator: ", ")).") var metric: String
    @Option(help: "Relative lift to detect, e.g. 0.02 for 2%.") var mde: Double
    @Option(help: "Arm weights, control first, e.g. 0.5,0.5.") var weights: String = "0.5,0.5"
    @Option(help: "Significance level.") var alpha: Double = 0.05
    @Option(help: "Power wanted.") var power: Double = 0.8
    @Option(help: "Days of history to learn variance and traffic from.") var days: Int = 14
    @Option(help: "End of the history window (ISO 8601; default now).") var until: String?

    func run() async throws {
        let chosen = try ExperimentMetric.named(metric)
        let parsed = try weights.split(separator: ",").map { text in
            guard let value = Double(text.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--weights: '\(text)' is not a number") }
            return value
        }
        let end = try parseTime(until, "--until") ?? Date().epochMillis
        let plan = try await PowerAnalysis.plan(log: try await home.openEventLog(), metric: chosen, relativeEffect: mde, weights: parsed,
                                                alpha: alpha, power: power, days: days, until: end)
        if output.json { return try printJSON(plan) }
        print(String(format: "%@: mean %.4f per user, standard deviation %.4f, over the %d days before %@", plan.metric, plan.baselineMean,
                     plan.perUserStandardDeviation, plan.historyDays, TimestampParser.iso8601String(end)))
        print(String(format: "to detect a %.1f%% lift with %.0f%% power at α = %g: %d users (%@ per arm)", plan.minimumDetectableEffect * 100,
                     plan.power * 100, plan.alpha, plan.usersNeeded, plan.usersPerArm.map(String.init).joined(separator: " / ")))
        let seen = plan.distinctUsersByDay.last ?? 0
        print(plan.daysNeeded.map { String(format: "at the history's pace (%d distinct users in %d days): about %.1f days", seen, plan.historyDays, $0) }
              ?? "no users arrived in the history window; the days needed cannot be estimated")
        if plan.usersNeeded > seen {
            print("note: that is more users than the history saw in \(plan.historyDays) days (\(seen)); past them, new users come slowly. Consider a larger lift, a metric with less variance, or CUPED.")
        }
    }
}
