public import DuetCore
public import DuetStore
import Foundation

/// How a shadowed candidate's lists compared with the lists production showed for the same requests.
public struct ShadowReport: Codable, Sendable {
    public var shadow: String
    public var candidate: String
    public var production: String
    public var share: Double
    public var k: Int
    public var lists: Int
    /// Mean share of the top k both lists hold.
    public var overlapAtK: Double
    /// Mean Kendall τ of the ranks of the items both lists hold (lists sharing fewer than two are left out).
    public var rankCorrelation: Double?
    public var listsWithRankCorrelation: Int
    /// Plays that followed the shown lists, of items in them.
    public var plays: Int
    /// Of those plays, the ones on items the candidate's list held too.
    public var playsTheCandidateAlsoListed: Int

    /// The share of what listeners played from production's lists that the candidate would have listed too.
    public var wouldHaveBeenPlayed: Double? { plays > 0 ? Double(playsTheCandidateAlsoListed) / Double(plays) : nil }

    public var textLines: [String] {
        var lines = ["shadow \(shadow): candidate \(candidate.prefix(12)) beside production \(production.prefix(12)) on \(String(format: "%g%%", share * 100)) of requests; \(lists) lists"]
        lines.append(String(format: "  overlap@%d %.3f (share of the top %d both lists hold)", k, overlapAtK, k))
        if let rankCorrelation {
            lines.append(String(format: "  rank correlation (Kendall τ on shared items) %.3f over %d lists", rankCorrelation, listsWithRankCorrelation))
        }
        if let rate = wouldHaveBeenPlayed {
            lines.append(String(format: "  would have been played: %.1f%% of the %d plays from production's lists were of items the candidate listed too", rate * 100, plays))
        } else {
            lines.append("  would have been played: no plays followed the shadowed lists yet")
        }
        return lines
    }
}

extension Lab {
    /// Starts scoring `candidate` beside production on `share` of requests. Serve never shows its lists.
    @discardableResult
    public func startShadow(candidate reference: String, share: Double, actor: String, id: String? = nil) async throws -> ExperimentSpec {
        guard share > 0, share <= 1 else { throw DuetError.invalidValue(field: "share", reason: "\(share) must be in (0, 1]") }
        let candidate = try await resolveBundle(reference)
        _ = try ModelBundle(folder: bundleFolder(candidate))
        guard let production = try await registry.production().model else {
            throw DuetError.refused("refused: nothing is in production yet, so there is nothing to shadow beside")
        }
        guard try await registry.people().contains(where: { $0.name == actor }) else { throw RegistryRules.unregistered(actor) }
        // Weights must be > 0: a shadow of every request keeps a sliver on the production arm, which only names production.
        let weight = min(share, 0.9999)
        let spec = ExperimentSpec(id: id ?? "shadow-\(candidate.prefix(8))-\(Date().epochMillis)",
                                  hypothesis: "Shadow: how \(candidate.prefix(12))'s lists compare with production's",
                                  arms: [ExperimentArm(name: Rollout.productionArm, bundleID: production, weight: 1 - weight),
                                         ExperimentArm(name: "shadow", bundleID: candidate, weight: weight)],
                                  seed: "shadow", successMetrics: [RegistryRules.rolloutSuccessMetric], author: actor, approvalsRequired: 0, kind: .shadow)
        try await createExperiment(spec)
        try await start(experiment: spec.id)
        return spec
    }

    /// Stops a shadow; its logged lists stay for reports.
    public func stopShadow(_ id: String) async throws {
        guard try await registry.experiment(id)?.spec.isShadow == true else { throw DuetError.notFound(kind: "shadow", id: id) }
        try await registry.stop(experiment: id)
    }

    /// Overlap@k, rank correlation and the "would have been played" rate of a shadow, from its logged lists
    /// and the plays that followed the shown lists (within `attributionHours`).
    public func shadowReport(_ id: String, eventLog: any EventLog, k: Int = 10, attributionHours: Double = 24) async throws -> ShadowReport {
        guard let record = try await registry.experiment(id), record.spec.isShadow else { throw DuetError.notFound(kind: "shadow", id: id) }
        guard (1...1_000).contains(k) else { throw DuetError.invalidValue(field: "k", reason: "\(k) must be 1–1000") }
        var report = ShadowReport(shadow: id, candidate: record.spec.arms[1].bundleID, production: record.spec.arms[0].bundleID,
                                  share: record.spec.arms[1].weight, k: k, lists: 0, overlapAtK: 0, rankCorrelation: nil,
                                  listsWithRankCorrelation: 0, plays: 0, playsTheCandidateAlsoListed: 0)
        var overlap = 0.0, tau = 0.0
        var lists: [String: (shown: Set<String>, candidate: Set<String>)] = [:]
        var first: EpochMillis = .max, last: EpochMillis = .min
        var cursor: Int64 = 0
        while true {
            let page = try await eventLog.shadows(of: id, after: cursor, limit: 10_000)
            guard let end = page.last else { break }
            for (_, shadow) in page {
                let shown = Array(shadow.shown.prefix(k)), candidate = Array(shadow.items.prefix(k))
                overlap += Double(Set(shown).intersection(candidate).count) / Double(k)
                if let correlation = Self.kendallTau(shown, candidate) {
                    tau += correlation
                    report.listsWithRankCorrelation += 1
                }
                report.lists += 1
                lists[shadow.requestID] = (Set(shadow.shown), Set(shadow.items))
                first = min(first, shadow.timestamp)
                last = max(last, shadow.timestamp)
            }
            cursor = end.sequence
        }
        guard report.lists > 0 else { return report }
        report.overlapAtK = overlap / Double(report.lists)
        if report.listsWithRankCorrelation > 0 { report.rankCorrelation = tau / Double(report.listsWithRankCorrelation) }
        let window = EventFilter(from: first, until: last + EpochMillis(attributionHours * 3_600_000) + 1, kinds: [.play])
        try await eventLog.forEachEvent(matching: window) { page in
            for stored in page {
                guard let request = stored.event.requestID, let pair = lists[request], pair.shown.contains(stored.event.item) else { continue }
                report.plays += 1
                if pair.candidate.contains(stored.event.item) { report.playsTheCandidateAlsoListed += 1 }
            }
        }
        return report
    }

    package static func kendallTauForTesting(_ a: [String], _ b: [String]) -> Double? { kendallTau(a, b) }

    /// Kendall's τ of the items two rankings share, by their positions in each; nil when fewer than two are shared.
    static func kendallTau(_ a: [String], _ b: [String]) -> Double? {
        let positionInB = Dictionary(b.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let shared = a.compactMap { positionInB[$0] }
        guard shared.count >= 2 else { return nil }
        var concordant = 0, discordant = 0
        for i in 0..<shared.count {
            for j in (i + 1)..<shared.count {
                if shared[i] < shared[j] { concordant += 1 } else { discordant += 1 }
            }
        }
        return Double(concordant - discordant) / Double(concordant + discordant)
    }
}
