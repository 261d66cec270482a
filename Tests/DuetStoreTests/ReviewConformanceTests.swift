import DuetCore
import DuetStore
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Testing

/// The review's rules on every backend: the same refusals, in the same words, and an append-only log.
@Suite struct ReviewConformanceTests {
    static let analysis = String(repeating: "ab", count: 32)
    static let older = String(repeating: "cd", count: 32)

    static func setUp(_ registry: any LabRegistry, approvals: Int? = nil, reviewers: [String]? = nil) async throws {
        for (name, team) in [("carol", "growth"), ("bob", "recs"), ("dave", "recs"), ("erin", "search")] {
            try await registry.add(Person(name: name, team: team, contact: "\(name)@example.com", createdAt: 1))
        }
        for id in ["a", "b"] {
            try await registry.register(ModelRecord(id: id, name: id, kind: "als", snapshot: "s", parent: nil, createdAt: 1,
                                                    owner: id == "b" ? Owner(team: "recs", contact: "recs@example.com") : nil))
        }
        let spec = ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                     ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                  successMetrics: ["plays_per_user"], owner: Owner(team: "growth", contact: "carol@example.com"),
                                  author: "carol", approvalsRequired: approvals, reviewers: reviewers)
        try await registry.create(spec)
    }

    static func entry(_ kind: ReviewKind, _ author: String, _ text: String = "", parent: Int64? = nil, analysis: String? = nil) -> ReviewEntry {
        ReviewEntry(experimentID: "exp", kind: kind, author: author, text: text, parent: parent, analysisHash: analysis, createdAt: Date().epochMillis)
    }

    static func ship(by reviewer: String = "carol", analysis: String = analysis) -> Decision {
        Decision(experimentID: "exp", outcome: .ship, arm: "treatment", reviewer: reviewer, reason: "plays up", analysisHash: analysis, decidedAt: 1)
    }

    @Test(arguments: StoreBackend.enabled)
    func decisionNeedsApprovalsAndNoOpenObjection(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            try await Self.setUp(registry, reviewers: ["bob", "dave", "erin"])
            try await registry.start(experiment: "exp")
            await #expect { try await registry.add(Self.entry(.comment, "bob", "early look")) } throws: { "\($0)".contains("is running; it is reviewed once it has stopped") }
            try await registry.stop(experiment: "exp")

            // Nothing approved yet: refused, naming the reviewers who have not approved.
            await #expect { try await registry.record(Self.ship()) } throws: {
                let text = "\($0)"
                return text.contains("needs 2 approvals of analysis abababababababab from people other than its author carol; it has 0")
                    && text.contains("requested reviewers who have not approved: bob, dave, erin")
            }
            let comment = try await registry.add(Self.entry(.comment, "bob", "<b>why</b> are skips flat?"))
            #expect(comment.id != nil)
            #expect(try await registry.experiment("exp")?.spec.status == .inReview, "the first entry opens the review")
            try await registry.add(Self.entry(.comment, "carol", "the skip guardrail holds", parent: comment.id))
            await #expect { try await registry.add(Self.entry(.comment, "mallory", "hi")) } throws: { "\($0)".contains("nobody named 'mallory' is registered") }
            await #expect { try await registry.add(Self.entry(.comment, "bob", "re nothing", parent: 999)) } throws: { "\($0)".contains("#999") }

            // The author's approval is not taken; an approval of an older analysis does not count.
            await #expect { try await registry.add(Self.entry(.approval, "carol", analysis: Self.analysis)) } throws: { "\($0)".contains("is the author") }
            try await registry.add(Self.entry(.approval, "bob", analysis: Self.analysis))
            await #expect { try await registry.add(Self.entry(.approval, "bob", analysis: Self.analysis)) } throws: { "\($0)".contains("already approved") }
            try await registry.add(Self.entry(.approval, "dave", analysis: Self.older))
            await #expect { try await registry.record(Self.ship()) } throws: {
                let text = "\($0)"
                return text.contains("it has 1 (bob)") && text.contains("who have not approved: dave, erin")
                    && text.contains("Approvals of other analyses do not count: dave (cdcdcdcdcdcd)")
            }

            // An open objection blocks even with enough approvals.
            let objection = try await registry.add(Self.entry(.objection, "erin", "the search team's click-through was not measured"))
            try await registry.add(Self.entry(.approval, "erin", analysis: Self.analysis))
            await #expect { try await registry.record(Self.ship()) } throws: {
                "\($0)".contains("has 1 open objection: #\(objection.id!) by erin")
            }
            await #expect { try await registry.add(Self.entry(.resolution, "bob", parent: objection.id)) } throws: {
                "\($0)".contains("only erin, who raised objection")
            }
            await #expect { try await registry.add(Self.entry(.overrule, "erin", "mine", parent: objection.id)) } throws: { "\($0)".contains("resolve it instead") }
            try await registry.add(Self.entry(.resolution, "erin", "measured it: flat", parent: objection.id))
            await #expect { try await registry.add(Self.entry(.resolution, "erin", parent: objection.id)) } throws: { "\($0)".contains("no longer open") }

            // A second objection, overruled: the decision goes through and records it as dissent.
            let second = try await registry.add(Self.entry(.objection, "dave", "ship after the holiday"))
            try await registry.add(Self.entry(.overrule, "bob", "the holiday does not change the effect", parent: second.id))
            let id = try await registry.record(Self.ship())
            let stored = try #require(try await registry.decisions(experiment: "exp").first { $0.id == id })
            #expect(stored.decision.approvers == ["bob", "erin"])
            #expect(stored.decision.dissent == [Dissent(objection: second.id!, author: "dave", text: "ship after the holiday", overruledBy: "bob",
                                                        reason: "the holiday does not change the effect")])
            #expect(try await registry.experiment("exp")?.spec.status == .decided)
            await #expect { try await registry.add(Self.entry(.comment, "bob", "late")) } throws: { "\($0)".contains("already decided") }

            // The log is append-only in the database itself, not only in the rules.
            for sql in ["UPDATE reviews SET text = 'edited'", "DELETE FROM reviews"] {
                await #expect("\(sql)") { try await stores.executeOnLabRegistry(sql) } throws: { databaseRefusal($0).contains("append-only") }
            }
            #expect(try await registry.review(of: "exp").count == 9)
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func promotingAnotherTeamsModelNeedsThatTeam(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            try await Self.setUp(registry, approvals: 1)
            try await registry.add(EvaluationRecord(candidate: "a", baseline: nil, baselineKind: "popularity", snapshot: "s", split: "x", k: 10,
                                                    metricsJSON: "{}", reportPath: nil, createdAt: 1))
            try await registry.promote("a", actor: "carol", reason: "first", evidence: .rules, expectedGeneration: 0)
            try await registry.add(EvaluationRecord(candidate: "b", baseline: "a", baselineKind: "als", snapshot: "s", split: "x", k: 10,
                                                    metricsJSON: "{}", reportPath: nil, createdAt: 1))
            try await registry.start(experiment: "exp")
            try await registry.stop(experiment: "exp")
            try await registry.add(Self.entry(.approval, "erin", analysis: Self.analysis))
            try await registry.record(Self.ship())
            // b belongs to recs; carol (growth) promotes on erin's (search) approval: refused, naming the team.
            await #expect { try await registry.promote("b", actor: "carol", reason: "shipped", evidence: .rules, expectedGeneration: 1) } throws: {
                "\($0)".contains("owned by team recs (contact recs@example.com); promoting it as carol (team growth) needs an approval from team recs")
            }
            await #expect { try await registry.promote("b", actor: "carol", reason: "now", evidence: .override(reason: "urgent"), expectedGeneration: 1) } throws: {
                "\($0)".contains("needs an approval from team recs")
            }
            // Someone in recs may promote it.
            let change = try await registry.promote("b", actor: "dave", reason: "shipped", evidence: .rules, expectedGeneration: 1)
            #expect(change.to == "b")
            #expect(try await registry.model("b")?.owner == Owner(team: "recs", contact: "recs@example.com"))

            // Metrics have owners too; setting again replaces, nil clears.
            try await registry.setOwner(Owner(team: "growth", contact: "g@example.com"), ofMetric: "plays_per_user")
            try await registry.setOwner(Owner(team: "search", contact: "s@example.com"), ofMetric: "plays_per_user")
            try await registry.setOwner(Owner(team: "recs", contact: "r@example.com"), ofMetric: "skip_rate")
            try await registry.setOwner(nil, ofMetric: "skip_rate")
            #expect(try await registry.metricOwners() == ["plays_per_user": Owner(team: "search", contact: "s@example.com")])
            await #expect { try await registry.setOwner(Owner(team: "", contact: "x"), ofMetric: "plays_per_user") } throws: { "\($0)".contains("team") }
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func webhookLogIsKeptAndAppendOnly(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            await #expect { try await registry.add(WebhookRecord(url: "ftp://x", secret: String(repeating: "s", count: 16), events: ["*"], createdBy: "a", createdAt: 1)) } throws: {
                "\($0)".contains("http:// or https://")
            }
            await #expect { try await registry.add(WebhookRecord(url: "http://x", secret: "short", events: ["*"], createdBy: "a", createdAt: 1)) } throws: {
                "\($0)".contains("16–256")
            }
            await #expect { try await registry.add(WebhookRecord(url: "http://x", secret: String(repeating: "s", count: 16), events: ["deploy"], createdBy: "a", createdAt: 1)) } throws: {
                "\($0)".contains("'deploy' is not one of")
            }
            let id = try await registry.add(WebhookRecord(url: "http://127.0.0.1:9/hook", secret: String(repeating: "s", count: 16), events: ["promote", "decision"],
                                                          createdBy: "ana", createdAt: 1))
            #expect(try await registry.webhooks().map(\.events) == [["promote", "decision"]])
            try await registry.add(WebhookAttempt(webhook: id, delivery: "d1", event: "promote", payload: "{}", attempt: 1, statusCode: 500, error: "HTTP 500",
                                                  outcome: .retrying, at: 5))
            try await registry.add(WebhookAttempt(webhook: id, delivery: "d1", event: "promote", payload: "{}", attempt: 2, statusCode: 200, error: nil,
                                                  outcome: .delivered, at: 6))
            #expect(try await registry.webhookAttempts(limit: 10).map(\.attempt) == [2, 1])
            await #expect { try await stores.executeOnLabRegistry("UPDATE webhook_attempts SET outcome = 'failed'") } throws: { databaseRefusal($0).contains("append-only") }
            try await registry.setWebhook(id, active: false)
            #expect(try await registry.webhooks().first?.active == false)
            await #expect { try await registry.setWebhook(99, active: false) } throws: { "\($0)".contains("#99") }
        }
    }

    /// The overview's last hour, counted in the database on both backends.
    @Test(arguments: StoreBackend.enabled)
    func exposureSummaryCountsFallbacksInItsWindow(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            func exposure(_ n: Int, at time: EpochMillis, popularity: Bool = false, arm: Bool = false) -> Exposure {
                Exposure(requestID: "r\(n)", user: "u\(n)", timestamp: time, items: ["t1"], bundleID: "b",
                         experiments: [ExperimentArmExposure(experimentID: "exp", assigned: "treatment", served: arm ? "control" : "treatment",
                                                             fallbackReason: arm ? "treatment-bundle-unavailable" : nil)],
                         fallback: popularity ? "popularity" : nil)
            }
            _ = try await stores.eventLog.append(exposures: [exposure(1, at: 100), exposure(2, at: 1_000, popularity: true), exposure(3, at: 1_500, arm: true),
                                                             exposure(4, at: 1_999, arm: true), exposure(5, at: 2_000, popularity: true)])
            #expect(try await stores.eventLog.exposureSummary(from: 1_000, until: 2_000) == ExposureSummary(exposures: 3, popularityFallbacks: 1, armFallbacks: 2))
            #expect(try await stores.eventLog.exposureSummary(from: 0, until: 10_000) == ExposureSummary(exposures: 5, popularityFallbacks: 2, armFallbacks: 2))
            #expect(try await stores.eventLog.exposureSummary(from: 5_000, until: 6_000) == ExposureSummary(exposures: 0, popularityFallbacks: 0, armFallbacks: 0))
        }
    }
}
