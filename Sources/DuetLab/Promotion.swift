public import DuetCore
public import DuetStore
public import Foundation

/// How the production alias moves: the only code that asks the registry to promote or roll back.
/// The CLI, the dashboard and the demo all come here, so each path checks the same things.
///
/// A promotion checks, in this order:
/// 1. the bundle resolves to one id and every checksum verifies (Serve is never pointed at a bundle it
///    would refuse);
/// 2. unless overridden:
///    - an offline evaluation of the model against the current production model exists (against
///      popularity, for the first promotion), and the model is not significantly worse on the primary
///      metric there (the 95% paired-bootstrap interval lies wholly below 0);
///    - when a model is in production, a recorded ship decision for this model exists, from an
///      experiment whose control arm was the current production model;
///    - with `maxEvidenceAge`, that evaluation and that decision are no older than it;
/// 3. inside the registry's transaction (`RegistryRules.promote`): the alias has not moved since step 1
///    (else a conflict), the model is registered, not rejected and not already in production, and the
///    evaluation and decision above still exist. The change records the evaluation and decision ids.
///
/// `override` bypasses step 2 and the evidence part of step 3; its reason is recorded in the history.
/// A rollback checks the target bundle verifies, then `RegistryRules.rollback` (back one step, or to a
/// model that served before).
public struct PromotionPolicy: Sendable {
    /// The ranking metric whose significant regression blocks promotion (a name in `RankingMetrics.names`).
    public var primaryMetric: String
    /// Evidence older than this is refused; nil accepts any age.
    public var maxEvidenceAge: Duration?

    public init(primaryMetric: String = "ndcg", maxEvidenceAge: Duration? = nil) {
        self.primaryMetric = primaryMetric
        self.maxEvidenceAge = maxEvidenceAge
    }
}

extension Lab {
    /// Moves production to `reference` (an id, a unique prefix) after the checks listed on `PromotionPolicy`.
    @discardableResult
    public func promote(_ reference: String, actor: String, reason: String, override overrideReason: String? = nil,
                        policy: PromotionPolicy = PromotionPolicy(), now: Date = Date()) async throws -> ProductionChange {
        guard RankingMetrics.names.contains(policy.primaryMetric) else {
            throw DuetError.invalidValue(field: "primary metric", reason: "'\(policy.primaryMetric)' is not one of \(RankingMetrics.names.joined(separator: ", "))")
        }
        let model = try await resolveBundle(reference)
        _ = try ModelBundle(folder: bundleFolder(model))
        let production = try await registry.production()
        if overrideReason == nil {
            try await checkEvidence(for: model, current: production.model, policy: policy, now: now.epochMillis)
        }
        let request = RegistryRules.PromotionRequest(model: model, actor: actor, reason: reason,
                                                     evidence: overrideReason.map { .override(reason: $0) } ?? .rules,
                                                     expectedGeneration: production.generation)
        let change = try await registry.promote(request)
        await notify(.promote(change))
        return change
    }

    /// Moves production back one step, or to `target`, which must have served before.
    @discardableResult
    public func rollback(to target: String? = nil, actor: String, reason: String) async throws -> ProductionChange {
        var destination: String?
        if let target {
            destination = try await resolveBundle(target)
            _ = try ModelBundle(folder: bundleFolder(destination!))
        }
        let generation = try await registry.production().generation
        let change = try await registry.rollback(.init(target: destination, actor: actor, reason: reason, expectedGeneration: generation))
        await notify(.rollback(change))
        return change
    }

    /// The strength and age of the evidence; its existence is the registry rule's to refuse, with its words.
    private func checkEvidence(for model: String, current: String?, policy: PromotionPolicy, now: EpochMillis) async throws {
        let name = model.prefix(12)
        let evaluation = try await registry.evaluations(candidate: model)
            .last { current == nil || $0.baseline == current }
        if let evaluation {
            let comparison = try JSONDecoder().decode(OfflineComparison.self, from: Data(evaluation.metricsJSON.utf8))
            guard let primary = comparison.differences.first(where: { $0.metric.hasPrefix("\(policy.primaryMetric)@") }) else {
                throw DuetError.refused("refused: evaluation #\(evaluation.id ?? 0) of model \(name) has no \(policy.primaryMetric) result to judge it by")
            }
            if primary.isSignificant, primary.difference < 0 {
                throw DuetError.refused(String(format: "refused: evaluation #%lld shows model %@ significantly worse than %@ on %@: %+.4f [%+.4f, %+.4f]; fix the model, or pass --override --reason \"…\"",
                                               evaluation.id ?? 0, String(name), comparison.baseline.prefix(12).description, primary.metric,
                                               primary.difference, primary.lower, primary.upper))
            }
            try requireFresh(evaluation.createdAt, "evaluation #\(evaluation.id ?? 0)", policy: policy, now: now)
        }
        guard let current, policy.maxEvidenceAge != nil else { return }
        var ships: [RegistryRules.ShipDecision] = []
        for stored in try await registry.decisions(experiment: nil).reversed() where stored.decision.outcome == .ship {
            guard let experiment = try await registry.experiment(stored.decision.experimentID) else { continue }
            ships.append(.init(id: stored.id, arm: stored.decision.arm, spec: experiment.spec))
        }
        if let ship = RegistryRules.shipDecision(for: model, current: current, among: ships),
           let decided = try await registry.decisions(experiment: ship.spec.id).first(where: { $0.id == ship.id }) {
            try requireFresh(decided.decision.decidedAt, "decision #\(ship.id)", policy: policy, now: now)
        }
    }

    private func requireFresh(_ time: EpochMillis, _ what: String, policy: PromotionPolicy, now: EpochMillis) throws {
        guard let limit = policy.maxEvidenceAge else { return }
        let limitMillis = EpochMillis(limit.wholeMilliseconds)
        if now - time > limitMillis {
            let hours = Double(now - time) / 3_600_000
            throw DuetError.refused(String(format: "refused: %@ is %.1f h old, older than the %.1f h --max-evidence-age allows; evaluate or test again, or pass --override --reason \"…\"",
                                           what, hours, Double(limitMillis) / 3_600_000))
        }
    }
}
