import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import Foundation

struct MemoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Every experiment and holdout: owner, dates, offline deltas of treatment vs control, online lifts with CIs, the decision.",
        discussion: "The same list as the dashboard's /memory page and /memory.json. Search terms combine: all must match."
    )
    @OptionGroup var home: HomeOptions
    @OptionGroup var output: OutputOptions
    @Option(help: "Only experiments measuring this metric (success metric or offline metric).") var metric: String?
    @Option(help: "Only experiments with an arm on this model (bundle id prefix or name).") var model: String?
    @Option(help: "Only experiments owned by this team or authored by this person.") var owner: String?

    func run() async throws {
        let entries = try await home.lab().experimentMemory(metric: metric, model: model, owner: owner)
        if output.json { return try printJSON(entries) }
        for entry in entries {
            print("\(entry.id) (\(entry.kind), \(entry.status)) owner \(entry.owner?.team ?? "—"): \(entry.hypothesis)")
            for delta in entry.offline where delta.metric.hasPrefix("ndcg@") {
                print(String(format: "  offline %@ %@ %+.4f [%+.4f, %+.4f] (evaluation #%lld)", delta.arm, delta.metric, delta.difference, delta.lower, delta.upper, delta.evaluation))
            }
            for lift in entry.online where lift.role != "exploratory" {
                print(String(format: lift.relative ? "  online  %@ %@ %+.1f%% [%+.1f%%, %+.1f%%] %@" : "  online  %@ %@ %+.4f [%+.4f, %+.4f] %@",
                             lift.arm, lift.metric, lift.relative ? lift.lift * 100 : lift.lift, lift.relative ? lift.lower * 100 : lift.lower,
                             lift.relative ? lift.upper * 100 : lift.upper, lift.verdict))
            }
            if let decision = entry.decision {
                print("  decision #\(decision.id) \(decision.outcome) by \(decision.decidedBy), approved by \(decision.approvers.isEmpty ? "nobody" : decision.approvers.joined(separator: ", "))\(decision.dissent.isEmpty ? "" : ", \(decision.dissent.count) dissent")")
            }
        }
    }
}
