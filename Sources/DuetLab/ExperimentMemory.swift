public import DuetCore
public import DuetStore
import Foundation

/// One experiment as the Lab remembers it: what it tested, who owned it, what the offline
/// evaluation said about its treatment against its control on the same snapshot, what the online
/// test measured, and what was decided, by whom, over whose dissent.
public struct ExperimentMemory: Codable, Sendable {
    public struct OfflineDelta: Codable, Sendable {
        public var arm: String
        public var evaluation: Int64
        public var snapshot: String
        public var metric: String
        public var difference: Double
        public var lower: Double
        public var upper: Double
    }

    public struct OnlineLift: Codable, Sendable {
        public var arm: String
        public var metric: String
        public var role: String
        /// Relative lift and its 95% interval (0.05 = +5%); absolute when no relative estimate exists.
        public var lift: Double
        public var lower: Double
        public var upper: Double
        public var relative: Bool
        public var verdict: String
    }

    public struct Remembered: Codable, Sendable {
        public var id: Int64
        public var outcome: String
        public var arm: String?
        public var decidedBy: String
        public var reason: String
        public var approvers: [String]
        public var dissent: [Dissent]
        public var promotedAs: Int?
        public var decidedAt: EpochMillis
    }

    public var id: String
    public var kind: String
    public var hypothesis: String
    public var status: String
    public var owner: Owner?
    public var author: String?
    public var createdAt: EpochMillis
    public var startedAt: EpochMillis?
    public var stoppedAt: EpochMillis?
    /// Arm name → bundle id, and the model names, for searching by model.
    public var arms: [String: String]
    public var models: [String]
    public var successMetrics: [String]
    /// Who owns each success metric, where someone does.
    public var metricOwners: [String: Owner]
    public var offline: [OfflineDelta]
    public var analysis: String?
    public var online: [OnlineLift]
    public var decision: Remembered?

    /// The pair the cross-experiment chart plots: the offline NDCG difference and the first success
    /// metric's online lift, for the first treatment that has both.
    public var chartPoint: (offline: Double, online: Double)? {
        for arm in arms.keys.sorted() {
            guard let offline = offline.first(where: { $0.arm == arm && $0.metric.hasPrefix("ndcg@") }),
                  let online = online.first(where: { $0.arm == arm && $0.role == "success" && $0.relative }) else { continue }
            return (offline.difference, online.lift)
        }
        return nil
    }

    /// Matches a search: each given term must match (metric: a success or offline metric; model: a
    /// bundle id prefix or a model name; owner: the team or the author).
    public func matches(metric: String?, model: String?, owner: String?) -> Bool {
        if let metric, !metric.isEmpty,
           !(successMetrics.contains(metric) || offline.contains { $0.metric.hasPrefix(metric) } || online.contains { $0.metric == metric }) { return false }
        if let model, !model.isEmpty, !(arms.values.contains { $0.hasPrefix(model) } || models.contains(model)) { return false }
        if let owner, !owner.isEmpty, !(self.owner?.team == owner || author == owner) { return false }
        return true
    }
}

extension Lab {
    /// Every experiment and holdout, oldest first, with offline and online numbers side by side.
    public func experimentMemory(metric: String? = nil, model: String? = nil, owner: String? = nil) async throws -> [ExperimentMemory] {
        let names = Dictionary(try await registry.models().map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        let evaluations = try await registry.evaluations(candidate: nil)
        let decisions = try await registry.decisions(experiment: nil)
        let metricOwners = try await registry.metricOwners()
        var memory: [ExperimentMemory] = []
        // Rollouts and shadows have their own record (`rollout status`, `shadow report`); they test no idea.
        for record in try await registry.experiments() where !record.spec.isRollout && !record.spec.isShadow {
            let spec = record.spec
            var offline: [ExperimentMemory.OfflineDelta] = []
            for arm in spec.arms.dropFirst() {
                // The newest evaluation of this treatment against this control: the same snapshot and split by construction.
                guard let evaluation = evaluations.last(where: { $0.candidate == arm.bundleID && $0.baseline == spec.control.bundleID }),
                      let comparison = try? JSONDecoder().decode(OfflineComparison.self, from: Data(evaluation.metricsJSON.utf8)) else { continue }
                for difference in comparison.differences {
                    offline.append(.init(arm: arm.name, evaluation: evaluation.id ?? 0, snapshot: evaluation.snapshot, metric: difference.metric,
                                         difference: difference.difference, lower: difference.lower, upper: difference.upper))
                }
            }
            var online: [ExperimentMemory.OnlineLift] = []
            let latest = try latestAnalysis(of: spec.id)
            for result in latest?.0.metrics ?? [] {
                let estimate = result.relative ?? result.absolute
                online.append(.init(arm: result.arm, metric: result.metric, role: result.role, lift: estimate.estimate, lower: estimate.lower,
                                    upper: estimate.upper, relative: result.relative != nil, verdict: result.verdict))
            }
            let decided = decisions.last { $0.decision.experimentID == spec.id }.map { stored in
                ExperimentMemory.Remembered(id: stored.id, outcome: stored.decision.outcome.rawValue, arm: stored.decision.arm,
                                            decidedBy: stored.decision.reviewer, reason: stored.decision.reason, approvers: stored.decision.approvers,
                                            dissent: stored.decision.dissent, promotedAs: stored.decision.registryGeneration,
                                            decidedAt: stored.decision.decidedAt)
            }
            let entry = ExperimentMemory(
                id: spec.id, kind: (spec.kind ?? .abTest).rawValue, hypothesis: spec.hypothesis, status: spec.status.rawValue, owner: spec.owner,
                author: spec.author, createdAt: record.createdAt, startedAt: record.startedAt, stoppedAt: record.stoppedAt,
                arms: Dictionary(uniqueKeysWithValues: spec.arms.map { ($0.name, $0.bundleID) }),
                models: spec.arms.compactMap { names[$0.bundleID] }, successMetrics: spec.successMetrics,
                metricOwners: metricOwners.filter { spec.successMetrics.contains($0.key) },
                offline: offline, analysis: latest?.1, online: online, decision: decided)
            if entry.matches(metric: metric, model: model, owner: owner) { memory.append(entry) }
        }
        return memory
    }
}
