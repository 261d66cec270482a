import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct HoldoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "holdout",
        abstract: "Long-term holdouts: a slice of users kept on a pinned bundle while everyone else gets every launch.",
        discussion: """
            A holdout is an experiment of kind holdout: start, stop, analyse and inspect it with \
            `duet lab experiment start|stop|status` and `duet lab analyze`. Its analysis compares \
            'launches' with 'holdout' over its whole life: what all launches since its start did together. \
            Held-out users join no other experiment.
            """,
        subcommands: [Create.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a draft holdout.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Option(help: "Holdout id.") var id: String
        @Option(help: "What the launches should add up to.") var hypothesis: String = "Launches since this holdout began improve listening"
        @Option(help: "The bundle the slice keeps (default: production now).") var pin: String = "production"
        @Option(help: "Share of users held out, e.g. 0.03.") var share: Double
        @Option(help: "Days the holdout is meant to run.") var days: Int = 90
        @Option(help: "Hold out only inside NAMESPACE:START:END.") var namespace: String?
        @Option(help: "Success metrics, comma-separated.") var success: String = ExperimentMetric.playsPerUser.rawValue
        @Option(help: "Guardrail METRIC:MARGIN; repeatable.") var guardrail: [String] = []

        func run() async throws {
            let lab = try await home.lab()
            let range = try ExperimentFlags.namespace(namespace)
            let guardrails = try ExperimentFlags.guardrails(guardrail)
            let author = try person.resolved()
            let known = try await lab.registry.people().first { $0.name == author }
            let spec = try await lab.createHoldout(id: id, hypothesis: hypothesis, pinned: pin, share: share, days: days, namespace: range,
                                                   successMetrics: try success.split(separator: ",").map { try ExperimentMetric.named(String($0)).rawValue },
                                                   guardrails: guardrails, owner: known.map { Owner(team: $0.team, contact: $0.contact) }, author: author)
            print("holdout \(id) created as a draft: \(Int((share * 100).rounded()))% kept on \(spec.control.bundleID.prefix(12)) for \(days) days; start it with `duet lab experiment start \(id)`")
        }
    }
}

/// Flags `experiment create` and `holdout create` share.
enum ExperimentFlags {
    static func namespace(_ text: String?) throws -> NamespaceRange? {
        guard let text else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 3, let start = Double(parts[1]), let end = Double(parts[2]) else {
            throw ValidationError("--namespace takes NAME:START:END, e.g. home:0:0.5")
        }
        return NamespaceRange(id: String(parts[0]), start: start, end: end)
    }

    static func guardrails(_ flags: [String]) throws -> [GuardrailMetric] {
        try flags.map { text in
            let parts = text.split(separator: ":")
            guard parts.count == 2, let margin = Double(parts[1]) else { throw ValidationError("--guardrail takes METRIC:MARGIN, e.g. skip_rate:0.02") }
            return GuardrailMetric(metric: try ExperimentMetric.named(String(parts[0])).rawValue, margin: margin)
        }
    }
}
