import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct RefreshCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh",
        abstract: "The refresh lane: freeze the newest window, train the recipe, gate it offline against production, roll it out in stages.",
        discussion: """
            Needs production to be a model of the same recipe, and the recipe's refresh policy. No experiment or \
            decision: a refresh that fails its gate is rejected; one that passes ramps through the policy's stages, \
            judged by the rollout guard, and is rolled back automatically on a guardrail breach. With --every the \
            lane runs on a schedule, at most once at a time across machines sharing the registry.
            """
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var person: ActorOptions
    @Argument(help: "Recipe name (or name@version).") var recipe: String
    @Option(help: "Run the lane on this schedule, e.g. 24h.") var every: String?
    @Option(help: "How often the guard judges the rollout, e.g. 60s.") var judgeEvery: String = "60s"
    @Flag(help: "Start the rollout and return; judge it later with `duet lab rollout judge`.") var noWait = false

    func run() async throws {
        let lab = try await home.lab()
        let actor = try person.resolved()
        let log = try await home.openEventLog()
        let judge = try parseDuration(judgeEvery, "--judge-every")
        if let every {
            let interval = try parseDuration(every, "--every")
            try await lab.refreshEvery(interval, recipe: recipe, actor: actor, eventLog: log, judgeEvery: judge) { print($0) }
            return
        }
        let run = try await lab.refresh(recipe: recipe, actor: actor, eventLog: log)
        print("snapshot \(run.snapshot.hash.prefix(12)): \(run.snapshot.users) users, \(run.snapshot.interactions) interactions; left out \(run.separation.excludedTotal) feedback events not on production's lists")
        print("bundle \(run.bundle.prefix(12)) trained by \(run.recipe.reference) on split \(run.split.id)")
        print(run.gate.summary)
        guard let rollout = run.rollout else {
            print("the refresh was rejected; production is unchanged")
            throw ExitCode(2)
        }
        print("rollout \(rollout.id) started at \(String(format: "%g%%", rollout.share * 100))")
        if noWait { return }
        let ended = try await lab.watch(rollout: rollout.id, eventLog: log, every: judge) { print($0.summary) }
        if ended.status != .completed { throw ExitCode(2) }
    }
}

struct RolloutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Staged rollouts: status, pause, resume, abort, judge, or start one for a shipped model.",
        subcommands: [Status.self, Start.self, Judge.self, Pause.self, Resume.self, Abort.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every rollout, or one with its steps.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Rollout id (default: all).") var id: String?

        func run() async throws {
            let lab = try await home.lab()
            let rollouts = if let id { [try await lab.rollout(id)] } else { try await lab.registry.rollouts() }
            var events: [RolloutEvent] = []
            if let id { events = try await lab.registry.rolloutEvents(of: id) }
            if output.json {
                struct Shown: Encodable { var rollouts: [Rollout]; var events: [RolloutEvent] }
                return try printJSON(Shown(rollouts: rollouts, events: events))
            }
            if rollouts.isEmpty { print("no rollouts yet") }
            for rollout in rollouts {
                let stages = rollout.stages.enumerated().map { index, stage in
                    let text = String(format: "%g%%", stage.share * 100)
                    return index == rollout.stage ? "[\(text)]" : text
                }.joined(separator: " → ")
                print("\(rollout.id) (\(rollout.lane.rawValue), \(rollout.status.rawValue)) \(rollout.candidate.prefix(12)) over \(rollout.baseline.prefix(12)): \(stages)")
                if let outcome = rollout.outcome { print("  \(outcome)") }
            }
            for event in events {
                let when = TimestampParser.iso8601String(event.at)
                print("  \(when) \(event.action.rawValue) → stage \(event.stage + 1) (\(String(format: "%g%%", event.share * 100))) by \(event.actor): \(event.reason)\(event.analysisHash.map { " [analysis \($0.prefix(12))]" } ?? "")")
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Roll out a model shipped by a recorded decision in stages, instead of promoting it at once.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Bundle id or prefix.") var bundle: String
        @Option(help: "Why.") var reason: String
        @Option(help: "Stages, e.g. 5%,25%,100%.") var stages: String = "5%,25%,100%"
        @Option(help: "Minimum time at each partial stage, e.g. 1h.") var dwell: String = "1h"
        @Option(help: "Minimum candidate users at each partial stage.") var minUsers: Int = 200

        func run() async throws {
            let lab = try await home.lab()
            let parsed = try RolloutStage.parse(stages, dwellSeconds: Int(try parseDuration(dwell, "--dwell").components.seconds), users: minUsers)
            let rollout = try await lab.startRollout(candidate: bundle, lane: .ship, stages: parsed, actor: try person.resolved(), reason: reason)
            print("rollout \(rollout.id) started at \(String(format: "%g%%", rollout.share * 100)) (decision #\(rollout.decisionID ?? 0)); the guard moves it with `duet lab rollout judge \(rollout.id)`")
        }
    }

    struct Judge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Judge the current stage now: roll back on a breach, advance when it has held long enough.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Rollout id (default: the active one).") var id: String?
        @Option(help: "Keep judging at this interval until the rollout ends, e.g. 60s.") var every: String?

        func run() async throws {
            let lab = try await home.lab()
            let active = if let id { id } else { try await lab.activeRollout()?.id }
            guard let id = active else { throw DuetError.notFound(kind: "active rollout", id: "any") }
            let log = try await home.openEventLog()
            if let every {
                let ended = try await lab.watch(rollout: id, eventLog: log, every: try parseDuration(every, "--every")) { print($0.summary) }
                if ended.status != .completed { throw ExitCode(2) }
                return
            }
            let judgement = try await lab.judge(rollout: id, eventLog: log)
            print(judgement.summary)
            if let path = judgement.analysisPath { print("analysis \(judgement.analysisHash?.prefix(12) ?? ""): \(path.path)") }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hold the rollout at its stage; the guard still rolls it back on a breach.")
        @OptionGroup var control: ControlOptions
        func run() async throws { try await control.apply(.pause) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let the guard move the rollout again.")
        @OptionGroup var control: ControlOptions
        func run() async throws { try await control.apply(.resume) }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End the rollout: every user back on production at Serve's next poll.")
        @OptionGroup var control: ControlOptions
        func run() async throws { try await control.apply(.abort) }
    }

    struct ControlOptions: ParsableArguments {
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Rollout id.") var id: String
        @Option(help: "Why.") var reason: String

        func apply(_ action: RolloutAction) async throws {
            let rollout = try await home.lab().control(rollout: id, action, actor: try person.resolved(), reason: reason)
            print("rollout \(rollout.id) is \(rollout.status.rawValue) at \(String(format: "%g%%", rollout.share * 100))")
        }
    }
}

struct CutoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cutover",
        abstract: "Show or set the cutover delay: every replica switches to a change this long after it is written.",
        discussion: """
            Each replica loads and verifies a change ahead, then swaps at the activation time, so all replicas \
            switch together. Keep it above two of Serve's poll intervals plus a bundle's load time; a replica that \
            is not ready in time keeps the old state until it is, and reports it (`lateByMs` in /readyz, \
            duet_cutovers_late_total). 0 switches each replica on sight.
            """
    )
    @OptionGroup var home: HomeOptions
    @Option(help: "New delay, e.g. 2s or 400ms; 0 switches on sight.") var delay: String?

    func run() async throws {
        let registry = try await home.lab().registry
        if let delay {
            try await registry.setCutoverDelay(milliseconds: try parseDuration(delay, "--delay", allowZero: true).wholeMilliseconds)
        }
        print("cutover delay: \(try await registry.cutoverDelay()) ms")
    }
}
