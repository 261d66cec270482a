import DuetCore
import DuetStore
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Testing

/// Recipes, staged rollouts and locks on every backend: the same refusals, one transaction per step,
/// and append-only histories in the database itself.
@Suite struct RolloutConformanceTests {
    static let analysis = String(repeating: "ef", count: 32)
    static let stages = [RolloutStage(share: 0.1, minimumDwellSeconds: 0, minimumUsers: 5),
                         RolloutStage(share: 0.5, minimumDwellSeconds: 0, minimumUsers: 5),
                         RolloutStage(share: 1, minimumDwellSeconds: 0, minimumUsers: 0)]

    static func recipe(_ name: String = "tracks", factors: Double = 8, refresh: Bool = true) -> Recipe {
        Recipe(name: name, algorithm: "als", hyperparameters: ["factors": factors], windowDays: 28,
               refresh: refresh ? RefreshPolicy(stages: stages) : nil, author: "ana", createdAt: 1)
    }

    /// Production "a" and candidates "b" (same recipe) and "c" (another recipe), each evaluated against "a".
    static func setUp(_ registry: any LabRegistry) async throws {
        try await registry.add(Person(name: "ana", team: "recs", contact: "ana@example.com", createdAt: 1))
        let tracks = try await registry.add(recipe())
        let other = try await registry.add(recipe("other", factors: 64))
        for (id, recipe) in [("a", tracks), ("b", tracks), ("c", other)] {
            try await registry.register(ModelRecord(id: id, name: id, kind: "als", snapshot: "s", parent: id == "a" ? nil : "a", createdAt: 1,
                                                    recipe: recipe.reference))
        }
        try await registry.promote(.init(model: "a", actor: "ana", reason: "first", evidence: .override(reason: "test"), expectedGeneration: 0))
        for candidate in ["b", "c"] {
            try await registry.add(EvaluationRecord(candidate: candidate, baseline: "a", baselineKind: "als", snapshot: "s", split: "t", k: 10,
                                                    metricsJSON: "{}", reportPath: nil, createdAt: 1))
        }
    }

    static func rollout(_ id: String, candidate: String = "b", lane: RolloutLane = .refresh) -> Rollout {
        Rollout(id: id, lane: lane, recipe: nil, candidate: candidate, baseline: "a", evaluationID: nil, decisionID: nil, stages: stages,
                actor: "ana", reason: "nightly refresh", startedAt: 0)
    }

    @Test(arguments: StoreBackend.enabled)
    func recipesAreVersionedAndAppendOnly(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            await #expect { try await registry.add(Self.recipe()) } throws: { "\($0)".contains("nobody named 'ana' is registered") }
            try await registry.add(Person(name: "ana", team: "recs", contact: "ana@example.com", createdAt: 1))
            let first = try await registry.add(Self.recipe())
            #expect(first.reference == "tracks@1")
            #expect(try await registry.add(Self.recipe()).version == 1, "an unchanged recipe is not stored again")
            let second = try await registry.add(Self.recipe(factors: 16))
            #expect(second.reference == "tracks@2")
            #expect(try await registry.recipe("tracks", version: nil)?.hyperparameters["factors"] == 16)
            #expect(try await registry.recipe("tracks", version: 1)?.hyperparameters["factors"] == 8)
            #expect(try await registry.recipes().map(\.reference) == ["tracks@1", "tracks@2"])
            var bad = Self.recipe("bad")
            bad.algorithm = "svd"
            await #expect { try await registry.add(bad) } throws: { "\($0)".contains("'svd' is not one of als, bpr, item-knn, popularity") }
            for sql in ["UPDATE recipes SET spec = '{}'", "DELETE FROM recipes"] {
                await #expect("\(sql)") { try await stores.executeOnLabRegistry(sql) } throws: { databaseRefusal($0).contains("append-only") }
            }
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func refreshLaneNeedsTheSameRecipeAndOneRolloutAtATime(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            try await Self.setUp(registry)
            await #expect { try await registry.start(Self.rollout("r-c", candidate: "c")) } throws: {
                "\($0)".contains("a new recipe is a new model and goes through an experiment")
            }
            await #expect { try await registry.start(Self.rollout("r-ship", lane: .ship)) } throws: { "\($0)".contains("no recorded decision ships model b") }
            var stranger = Self.rollout("r-x")
            stranger.actor = "mallory"
            await #expect { try await registry.start(stranger) } throws: { "\($0)".contains("nobody named 'mallory' is registered") }
            let version = try await registry.servingVersion()
            let started = try await registry.start(Self.rollout("r1"))
            #expect(started.recipe == "tracks@1" && started.evaluationID != nil && started.status == .running && started.stage == 0)
            #expect(try await registry.servingVersion() > version, "Serve must pick the rollout up")
            let serving = try await registry.servingConfiguration()
            let spec = try #require(serving.experiments.first { $0.spec.id == "r1" }?.spec)
            #expect(spec.kind == .rollout && spec.arms.map(\.name) == ["production", "candidate"] && spec.arms.map(\.bundleID) == ["a", "b"])
            #expect(abs(spec.arms[1].weight - 0.1) < 1e-9)

            await #expect { try await registry.start(Self.rollout("r2")) } throws: { "\($0)".contains("rollout 'r1' is still active") }
            await #expect {
                try await registry.promote(.init(model: "b", actor: "ana", reason: "now", evidence: .override(reason: "hurry"), expectedGeneration: 1))
            } throws: { "\($0)".contains("rollout 'r1' is moving production in stages") }
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func eachStepIsOneTransactionAndCompletionPromotes(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            try await Self.setUp(registry)
            try await registry.start(Self.rollout("r1"))
            await #expect { try await registry.apply(.init(rollout: "r1", action: .complete, actor: "ana", reason: "skip ahead")) } throws: {
                "\($0)".contains("`complete` is only the step onto the last stage")
            }
            await #expect { try await registry.apply(.init(rollout: "r1", action: .pause, actor: "mallory", reason: "weekend")) } throws: {
                "\($0)".contains("nobody named 'mallory' is registered")
            }
            await #expect { try await registry.apply(.init(rollout: "r1", action: .pause, actor: "rollout-guard", reason: "weekend")) } throws: {
                "\($0)".contains("the rollout guard only advances")
            }
            try await registry.apply(.init(rollout: "r1", action: .pause, actor: "ana", reason: "weekend"))
            await #expect { try await registry.apply(.init(rollout: "r1", action: .advance, actor: "ana", reason: "go")) } throws: { "\($0)".contains("is paused") }
            try await registry.apply(.init(rollout: "r1", action: .resume, actor: "ana", reason: "monday"))
            let advanced = try await registry.apply(.init(rollout: "r1", action: .advance, actor: "rollout-guard", reason: "clean", analysisHash: Self.analysis, expectedStage: 0))
            #expect(advanced.rollout.stage == 1 && advanced.promotion == nil)
            let record = try #require(try await registry.experiment("r1"))
            #expect(record.phase == 2 && abs(record.spec.arms[1].weight - 0.5) < 1e-9 && record.spec.status == .running)
            #expect(try await registry.phases(of: "r1").map(\.reason) == ["stage 1: 10%", "stage 2: 50%"])
            await #expect { try await registry.apply(.init(rollout: "r1", action: .complete, actor: "rollout-guard", reason: "late", expectedStage: 0)) } throws: {
                "\($0)".contains("moved to stage 2 (expected 1)")
            }

            let completed = try await registry.apply(.init(rollout: "r1", action: .complete, actor: "rollout-guard", reason: "every stage clean",
                                                          analysisHash: Self.analysis, expectedStage: 1))
            #expect(completed.rollout.status == .completed)
            // The promotion, the rollout's end and the experiment's stop landed together.
            let production = try await registry.production()
            #expect(production.model == "b" && production.generation == 2)
            let change = try #require(try await registry.history().last)
            #expect(change.rolloutID == "r1" && change.evaluationID == completed.rollout.evaluationID && change.from == "a")
            #expect(try await registry.experiment("r1")?.spec.status == .stopped)
            #expect(try await registry.servingConfiguration().experiments.isEmpty)
            #expect(try await registry.rolloutEvents(of: "r1").map(\.action) == [.start, .pause, .resume, .advance, .complete])
            await #expect { try await registry.apply(.init(rollout: "r1", action: .abort, actor: "ana", reason: "too late")) } throws: { "\($0)".contains("is completed") }
            for sql in ["UPDATE rollout_events SET reason = 'edited'", "DELETE FROM rollout_events"] {
                await #expect("\(sql)") { try await stores.executeOnLabRegistry(sql) } throws: { databaseRefusal($0).contains("append-only") }
            }
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func aRollbackCitesItsAnalysisAndLeavesProductionAlone(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            try await Self.setUp(registry)
            try await registry.start(Self.rollout("r1"))
            await #expect { try await registry.apply(.init(rollout: "r1", action: .rollBack, actor: "rollout-guard", reason: "skips up")) } throws: {
                "\($0)".contains("cites the analysis that shows the breach")
            }
            let version = try await registry.servingVersion()
            let rolledBack = try await registry.apply(.init(rollout: "r1", action: .rollBack, actor: "rollout-guard", reason: "breach: skip_rate worse",
                                                           analysisHash: Self.analysis, expectedStage: 0))
            #expect(rolledBack.rollout.status == .rolledBack && rolledBack.rollout.outcome == "breach: skip_rate worse")
            #expect(try await registry.production().model == "a")
            #expect(try await registry.history().count == 1)
            #expect(try await registry.experiment("r1")?.spec.status == .stopped)
            #expect(try await registry.servingVersion() > version)
            #expect(try await registry.servingConfiguration().experiments.isEmpty, "every user is back on production at Serve's next poll")
            #expect(try await registry.rolloutEvents(of: "r1").last?.analysisHash == Self.analysis)
            // Its experiment stopped, but a rollout is never reviewed or decided: its steps are its record.
            await #expect {
                try await registry.record(Decision(experimentID: "r1", outcome: .ship, arm: "candidate", reviewer: "ana", reason: "r",
                                                   analysisHash: Self.analysis, decidedAt: 1))
            } throws: { "\($0)".contains("'r1' is a staged rollout: it is not reviewed or decided") }
            await #expect {
                try await registry.add(ReviewEntry(experimentID: "r1", kind: .comment, author: "ana", text: "hm", parent: nil, analysisHash: nil, createdAt: 1))
            } throws: { "\($0)".contains("is a staged rollout") }
            // No rollout is active now, so production may move by hand: c, then back to a.
            try await registry.promote(.init(model: "c", actor: "ana", reason: "trial", evidence: .override(reason: "incident"), expectedGeneration: 1))
            try await registry.rollback(.init(target: nil, actor: "ana", reason: "back", expectedGeneration: 2))
            try await registry.start(Self.rollout("r2"))
            try await registry.apply(.init(rollout: "r2", action: .advance, actor: "rollout-guard", reason: "clean", analysisHash: Self.analysis))
            // An emergency rollback is never blocked by a rollout; the rollout then cannot complete, only abort.
            try await registry.rollback(.init(target: "c", actor: "ana", reason: "incident", expectedGeneration: 3))
            await #expect { try await registry.apply(.init(rollout: "r2", action: .complete, actor: "rollout-guard", reason: "done")) } throws: {
                "\($0)".contains("production moved to c during rollout 'r2'")
            }
            try await registry.apply(.init(rollout: "r2", action: .abort, actor: "rollout-guard", reason: "production moved"))
            #expect(try await registry.rollout("r2")?.status == .aborted)
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func aShippedModelRollsOutOnItsDecision(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            try await Self.setUp(registry)
            // "c" is another recipe: only an experiment against production and a ship decision let it take a rollout.
            let spec = ExperimentSpec(id: "exp", hypothesis: "c beats a", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                                 ExperimentArm(name: "treatment", bundleID: "c", weight: 0.5)],
                                      successMetrics: ["plays_per_user"], author: "ana", approvalsRequired: 0)
            try await registry.create(spec)
            try await registry.start(experiment: "exp")
            try await registry.stop(experiment: "exp")
            await #expect { try await registry.start(Self.rollout("r-ship", candidate: "c", lane: .ship)) } throws: { "\($0)".contains("no recorded decision ships model c") }
            let decision = try await registry.record(Decision(experimentID: "exp", outcome: .ship, arm: "treatment", reviewer: "ana", reason: "plays up",
                                                              analysisHash: Self.analysis, decidedAt: 1))
            let started = try await registry.start(Self.rollout("r-ship", candidate: "c", lane: .ship))
            #expect(started.decisionID == decision && started.evaluationID != nil && started.recipe == nil)
            try await registry.apply(.init(rollout: "r-ship", action: .advance, actor: "rollout-guard", reason: "clean", analysisHash: Self.analysis))
            let completed = try await registry.apply(.init(rollout: "r-ship", action: .complete, actor: "rollout-guard", reason: "done", analysisHash: Self.analysis))
            #expect(completed.promotion?.decisionID == decision && completed.promotion?.to == "c")
            #expect(try await registry.production().model == "c")
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func aLockHasOneHolderUntilItExpires(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            #expect(try await registry.acquireLock("refresh:tracks", holder: "host-a:1", seconds: 60))
            #expect(try await registry.acquireLock("refresh:tracks", holder: "host-a:1", seconds: 60), "the holder renews it")
            #expect(try await !registry.acquireLock("refresh:tracks", holder: "host-b:2", seconds: 60))
            #expect(try await registry.acquireLock("refresh:other", holder: "host-b:2", seconds: 60))
            try await registry.releaseLock("refresh:tracks", holder: "host-b:2")
            #expect(try await !registry.acquireLock("refresh:tracks", holder: "host-b:2", seconds: 60), "only the holder releases it")
            try await registry.releaseLock("refresh:tracks", holder: "host-a:1")
            #expect(try await registry.acquireLock("refresh:tracks", holder: "host-b:2", seconds: 60))
            try await stores.executeOnLabRegistry("UPDATE locks SET expires_at = 0 WHERE name = 'refresh:tracks'")
            #expect(try await registry.acquireLock("refresh:tracks", holder: "host-a:1", seconds: 60), "an expired lock is taken over")
        }
    }
}
