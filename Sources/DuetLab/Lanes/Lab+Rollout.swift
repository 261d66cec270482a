public import DuetCore
public import DuetStore
public import Foundation

/// What one look at a rollout's current stage found, and the step it took.
public struct RolloutJudgement: Sendable {
    public var rollout: Rollout
    /// The analysis of the stage (nil before any exposure).
    public var analysisHash: String?
    public var analysisPath: URL?
    public var candidateUsers: Int
    public var productionUsers: Int
    /// Harm shown beyond its margin; any one rolls the candidate back.
    public var breaches: [String]
    /// What still holds the stage: dwell time or users to wait for.
    public var waitingFor: [String]
    /// The step taken, if any.
    public var action: RolloutAction?
    public var promotion: ProductionChange?

    public var summary: String {
        let stage = "stage \(rollout.stage + 1)/\(rollout.stages.count) (\(String(format: "%g%%", rollout.share * 100)))"
        let users = "\(candidateUsers) candidate / \(productionUsers) production users"
        switch action {
        case .rollBack?: return "rolled back at \(stage): \(breaches.joined(separator: "; ")) [\(users)]"
        case .complete?: return "completed: production is \(rollout.candidate.prefix(12)) (generation \(promotion?.generation ?? 0)) [\(users) at the last partial stage]"
        case .advance?: return "advanced to \(stage) [\(users) at the stage before, no breach]"
        default:
            if rollout.status == .paused { return "paused at \(stage) [\(users)]" }
            return "holding \(stage): waiting for \(waitingFor.joined(separator: ", ")) [\(users), no breach]"
        }
    }
}

extension Lab {
    /// The automatic actor: the rollout's own guard, named in every step it takes.
    public static let rolloutGuard = RegistryRules.rolloutGuard

    /// Starts a staged rollout of `candidate` against production. For a refresh the candidate's recipe
    /// must allow the lane and a gate evaluation must exist; for a shipped model, a ship decision.
    @discardableResult
    public func startRollout(candidate reference: String, lane: RolloutLane, stages: [RolloutStage], actor: String, reason: String,
                             id: String? = nil, now: Date = Date()) async throws -> Rollout {
        let candidate = try await resolveBundle(reference)
        _ = try ModelBundle(folder: bundleFolder(candidate))
        guard let production = try await registry.production().model else {
            throw DuetError.refused("refused: nothing is in production yet, so there is nothing to roll out against; promote a first model")
        }
        let stamp = ISO8601DateFormatter.string(from: now, timeZone: TimeZone(identifier: "UTC")!, formatOptions: [.withYear, .withMonth, .withDay, .withTime])
        let rolloutID = id ?? "rollout-\(candidate.prefix(8))-\(stamp)"
        let rollout = Rollout(id: rolloutID, lane: lane, recipe: nil, candidate: candidate, baseline: production, evaluationID: nil, decisionID: nil,
                              stages: stages, actor: actor, reason: reason, startedAt: now.epochMillis)
        let started = try await registry.start(rollout)
        if let event = try await registry.rolloutEvents(of: started.id).last { await notify(.rollout(event)) }
        return started
    }

    public func rollout(_ id: String) async throws -> Rollout {
        guard let rollout = try await registry.rollout(id) else { throw DuetError.notFound(kind: "rollout", id: id) }
        return rollout
    }

    /// The active rollout, if any (at most one moves production at a time).
    public func activeRollout() async throws -> Rollout? {
        try await registry.rollouts().last { $0.status.isActive }
    }

    /// Pauses, resumes or aborts a rollout by hand; abort sends every user back to production.
    @discardableResult
    public func control(rollout id: String, _ action: RolloutAction, actor: String, reason: String) async throws -> Rollout {
        guard [.pause, .resume, .abort].contains(action) else {
            throw DuetError.invalidValue(field: "action", reason: "by hand a rollout is paused, resumed or aborted; the guard advances and rolls back")
        }
        let outcome = try await registry.apply(.init(rollout: id, action: action, actor: actor, reason: reason))
        await notify(.rollout(outcome.event))
        return outcome.rollout
    }

    /// One look at a running rollout's current stage, from a frozen read of the event log:
    /// - a breach (a guardrail's always-valid interval wholly beyond its margin, the candidate's fallback
    ///   share above 5%, or a sample-ratio mismatch) rolls back at once, citing the analysis;
    /// - otherwise, once the stage's dwell time and candidate users are reached, it advances, and the
    ///   step onto the last stage (100%) promotes the candidate;
    /// - otherwise it holds. A paused rollout never advances, but a breach still rolls it back.
    @discardableResult
    public func judge(rollout id: String, eventLog: any EventLog, now: Date = Date()) async throws -> RolloutJudgement {
        var rollout = try await self.rollout(id)
        guard rollout.status.isActive else {
            throw DuetError.refused("rollout '\(id)' is \(rollout.status.rawValue); there is nothing left to judge")
        }
        var judgement = RolloutJudgement(rollout: rollout, candidateUsers: 0, productionUsers: 0, breaches: [], waitingFor: [])
        // Production moved under the rollout (a manual rollback, say): what it measured no longer applies.
        let production = try await registry.production().model
        if production != rollout.baseline {
            let reason = "production moved to \(production?.prefix(12) ?? "nothing") during the rollout, which was measured against \(rollout.baseline.prefix(12))"
            judgement.rollout = try await control(rollout: id, .abort, actor: Self.rolloutGuard, reason: reason)
            judgement.action = .abort
            return judgement
        }
        let analysis = try await analyze(experiment: id, eventLog: eventLog)
        let report = analysis.report
        judgement.analysisHash = analysis.hash
        judgement.analysisPath = analysis.htmlPath
        judgement.candidateUsers = report.arms.first { $0.arm == Rollout.candidateArm }?.users ?? 0
        judgement.productionUsers = report.arms.first { $0.arm == Rollout.productionArm }?.users ?? 0
        judgement.breaches = Self.breaches(in: report)
        // A paused rollout still serves its candidate, so a breach rolls it back all the same.
        if !judgement.breaches.isEmpty {
            let outcome = try await registry.apply(.init(rollout: id, action: .rollBack, actor: Self.rolloutGuard,
                                                         reason: "breach at stage \(rollout.stage + 1): " + judgement.breaches.joined(separator: "; "),
                                                         analysisHash: analysis.hash, expectedStage: rollout.stage))
            judgement.rollout = outcome.rollout
            judgement.action = .rollBack
            await notify(.rollout(outcome.event))
            return judgement
        }
        let stage = rollout.stages[rollout.stage]
        let dwelt = (now.epochMillis - rollout.stageStartedAt) / 1_000
        if dwelt < stage.minimumDwellSeconds { judgement.waitingFor.append("\(stage.minimumDwellSeconds - Int(dwelt)) s more dwell") }
        if judgement.candidateUsers < stage.minimumUsers {
            judgement.waitingFor.append("\(stage.minimumUsers - judgement.candidateUsers) more candidate users")
        }
        guard judgement.waitingFor.isEmpty, rollout.status == .running else { return judgement }
        let completing = rollout.stage + 1 == rollout.stages.count - 1
        let reason = completing
            ? "rollout \(id) completed every stage without a breach (last stage analysis \(analysis.hash.prefix(12)))"
            : "stage \(rollout.stage + 1) held \(dwelt) s with \(judgement.candidateUsers) candidate users and no breach"
        let outcome = try await registry.apply(.init(rollout: id, action: completing ? .complete : .advance, actor: Self.rolloutGuard,
                                                     reason: reason, analysisHash: analysis.hash, expectedStage: rollout.stage))
        rollout = outcome.rollout
        judgement.rollout = rollout
        judgement.action = outcome.event.action
        judgement.promotion = outcome.promotion
        await notify(.rollout(outcome.event))
        if let promotion = outcome.promotion { await notify(.promote(promotion)) }
        return judgement
    }

    /// Harm a rollout stage shows, in words; empty when none.
    static func breaches(in report: ExperimentAnalysisReport) -> [String] {
        var found: [String] = []
        guard let candidate = report.arms.first(where: { $0.arm == Rollout.candidateArm }),
              let production = report.arms.first(where: { $0.arm == Rollout.productionArm }),
              candidate.users >= 2, production.users >= 2 else { return found }
        if candidate.exposures > 0 {
            let share = Double(candidate.fallbackExposures) / Double(candidate.exposures)
            if share > maximumCandidateFallbackShare {
                found.append(String(format: "the candidate's lists fell back for %.1f%% of its exposures (%@)", share * 100,
                                    candidate.fallbackReasons.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", ")))
            }
        }
        if report.srm.detected { found.append(String(format: "sample ratio mismatch (p = %.2g)", report.srm.pValue)) }
        let margins = Dictionary(RegistryRules.rolloutGuardrails.map { ($0.metric, $0.margin) }, uniquingKeysWith: { a, _ in a })
        for metric in report.metrics where metric.arm == Rollout.candidateArm {
            let margin = margins[metric.metric] ?? defaultRolloutMargin
            let interval = metric.sequential.map { ($0.lower, $0.upper) } ?? (metric.absolute.lower, metric.absolute.upper)
            let tolerated = margin * abs(metric.controlValue)
            let harmed = metric.higherIsBetter ? interval.1 < -tolerated : interval.0 > tolerated
            if harmed {
                found.append(String(format: "%@ is worse beyond its %.0f%% margin: %.4g → %.4g, Δ [%+.4g, %+.4g] (always-valid)", metric.metric,
                                    margin * 100, metric.controlValue, metric.treatmentValue, interval.0, interval.1))
            }
        }
        return found
    }

    /// A candidate whose bundle fails for more than this share of its lists is rolled back.
    public static let maximumCandidateFallbackShare = 0.05
    /// The margin of a success metric judged as a guardrail during a rollout.
    public static let defaultRolloutMargin = 0.05

    /// Judges the rollout every `interval` until it completes, rolls back or is aborted.
    public func watch(rollout id: String, eventLog: any EventLog, every interval: Duration,
                      report: (RolloutJudgement) -> Void) async throws -> Rollout {
        while true {
            let judgement = try await judge(rollout: id, eventLog: eventLog)
            report(judgement)
            if !judgement.rollout.status.isActive { return judgement.rollout }
            try await Task.sleep(for: interval)
        }
    }
}
