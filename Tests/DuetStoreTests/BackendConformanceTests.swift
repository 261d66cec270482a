import DuetCore
import DuetStore
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Testing

/// One suite, every backend: SQLite and PostgreSQL must prove the same behaviour.
@Suite struct BackendConformanceTests {
    static func event(_ n: Int, kind: EventKind = .play) -> FeedbackEvent {
        FeedbackEvent(user: "u\(n % 7)", item: "t\(n)", kind: kind, weight: Float(n % 5 + 1), timestamp: EpochMillis(1_000 * n),
                      requestID: n % 3 == 0 ? "r\(n)" : nil)
    }

    static func model(_ id: String) -> ModelRecord {
        ModelRecord(id: id, name: id, kind: "als", snapshot: "s", parent: nil, createdAt: Date().epochMillis)
    }

    static func evaluation(_ candidate: String, baseline: String?) -> EvaluationRecord {
        EvaluationRecord(candidate: candidate, baseline: baseline, baselineKind: baseline == nil ? "popularity" : "als", snapshot: "s",
                         split: "x", k: 10, metricsJSON: "{}", reportPath: nil, createdAt: Date().epochMillis)
    }

    @Test func postgresSuiteRunsInCI() {
        // CI starts PostgreSQL; the PostgreSQL half of this suite must not skip itself there.
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            #expect(StoreBackend.postgresURL != nil, "CI must set DUET_TEST_POSTGRES_URL (see .ci/run)")
        }
        #expect(StoreBackend.enabled.contains(.sqlite))
    }

    @Test func aNamedTestServerNeedsTheBackendBuiltIn() {
        // Without the trait the PostgreSQL half would vanish from the run without a word.
        let named = ["DUET_TEST_POSTGRES_URL", "DUET_TEST_POSTGRES_TLS_URL"].filter { ProcessInfo.processInfo.environment[$0]?.isEmpty == false }
        #expect(named.isEmpty || PostgresSupport.isBuiltIn,
                "\(named.joined(separator: " and ")) set, but this build has no PostgreSQL backend: run `swift test --traits Postgres`")
        #expect(StoreBackend.enabled.contains(.postgres) == (PostgresSupport.isBuiltIn && StoreBackend.postgresURL != nil))
    }

    @Test func aBuildWithoutTheBackendRefusesAPostgresURLWithoutEchoingIt() {
        let error = PostgresSupport.missing(for: "postgres://lab:s3cret@db.example:5432/duet")
        #expect(!"\(error)".contains("s3cret") && !"\(error)".contains("db.example"), "\(error)")
        #expect("\(error)".contains("--traits Postgres"), "\(error)")
    }

    @Test(arguments: StoreBackend.enabled)
    func eventLogAppendsReadsFreezesAndRollsBack(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let log = stores.eventLog
            let events = (0..<100).map { Self.event($0, kind: $0 % 4 == 0 ? .skip : .play) }
            let last = try await log.append(events: events)
            #expect(last != nil)
            #expect(try await log.count(matching: EventFilter()) == 100)
            #expect(try await log.count(matching: EventFilter(kinds: [.skip])) == 25)
            #expect(try await log.count(matching: EventFilter(from: 10_000, until: 20_000)) == 10)
            var seen: [FeedbackEvent] = []
            try await log.forEachEvent(matching: EventFilter(), pageSize: 7) { page in seen += page.map(\.event) }
            #expect(seen == events)
            let mark = try await log.highWaterMark().events
            try await log.append(events: [Self.event(500)])
            #expect(try await log.count(matching: EventFilter(maxSequence: mark)) == 100)

            var bad = (0..<10).map { Self.event($0) }
            bad[5].user = ""
            await #expect(throws: DuetError.self) { try await log.append(events: bad) }
            struct Boom: Error {}
            await #expect(throws: Boom.self) {
                try await log.appendAtomically { append in
                    for n in 0..<50 { try append(Self.event(n)) }
                    throw Boom()
                }
            }
            #expect(try await log.count(matching: EventFilter()) == 101)
            #expect(try await log.appendAtomically { append in for n in 0..<50 { try append(Self.event(n)) } } == 50)

            let exposure = Exposure(requestID: "req-1", user: "u1", timestamp: 5, items: ["a", "b"], bundleID: "bundle",
                                    experiments: [ExperimentArmExposure(experimentID: "e", phase: 2, assigned: "treatment", served: "control",
                                                                        fallbackReason: "treatment-bundle-unavailable")], context: "home")
            // Optional fields both ways, non-ASCII text; a batch that repeats a request id is refused whole.
            let popular = Exposure(requestID: "req-2", user: "zoë", timestamp: 6, items: ["c"], bundleID: "bundle", experiments: [],
                                   fallback: "unknown-user", context: nil)
            try await log.append(exposures: [exposure, popular])
            await #expect(throws: (any Error).self) {
                try await log.append(exposures: [Exposure(requestID: "req-3", user: "u3", timestamp: 7, items: ["d"], bundleID: "bundle",
                                                          experiments: []), popular])
            }
            #expect(try await log.exposures(after: 0, matching: EventFilter(), limit: 10).map(\.exposure) == [exposure, popular])
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func promotionRulesHistoryAndRollback(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            for id in ["a", "b", "c"] { try await registry.register(Self.model(id)) }
            await #expect(throws: DuetError.self) { try await registry.register(Self.model("a")) }
            await #expect { try await registry.promote("a", actor: "ana", reason: "r", evidence: .rules, expectedGeneration: nil) } throws: {
                "\($0)".contains("no offline evaluation")
            }
            let firstEvaluation = try await registry.add(Self.evaluation("a", baseline: nil))
            let first = try await registry.promote("a", actor: "ana", reason: "beats popularity", evidence: .rules, expectedGeneration: 0)
            #expect(first.generation == 1 && first.evaluationID == firstEvaluation)

            try await registry.add(Self.evaluation("b", baseline: "a"))
            await #expect { try await registry.promote("b", actor: "ana", reason: "r", evidence: .rules, expectedGeneration: 1) } throws: {
                "\($0)".contains("no recorded decision")
            }
            // A ship decision from an experiment whose control was not production does not count.
            let stale = ExperimentSpec(id: "stale", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "c", weight: 0.5),
                                                                           ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                       successMetrics: ["plays_per_user"], approvalsRequired: 0)
            try await registry.add(Person(name: "ana", team: "recs", contact: "ana@example.com", createdAt: 1))
            try await registry.create(stale)
            try await registry.record(Decision(experimentID: "stale", outcome: .ship, arm: "treatment", reviewer: "ana", reason: "vs c",
                                               analysisHash: String(repeating: "cd", count: 32), decidedAt: 1))
            await #expect { try await registry.promote("b", actor: "ana", reason: "r", evidence: .rules, expectedGeneration: 1) } throws: {
                "\($0)".contains("not the current production model")
            }
            // An experiment that ships b makes the rules pass.
            let spec = ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                         ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                      successMetrics: ["plays_per_user"], approvalsRequired: 0)
            try await registry.create(spec)
            try await registry.start(experiment: "exp")
            let hash = String(repeating: "ab", count: 32)
            let shipped = Decision(experimentID: "exp", outcome: .ship, arm: "treatment", reviewer: "ana", reason: "plays up", analysisHash: hash, decidedAt: 1)
            await #expect { try await registry.record(shipped) } throws: { "\($0)".contains("before deciding") }
            try await registry.stop(experiment: "exp")
            let decision = try await registry.record(shipped)
            let second = try await registry.promote("b", actor: "ana", reason: "shipped", evidence: .rules, expectedGeneration: 1)
            #expect(second.decisionID == decision)
            #expect(try await registry.decisions(experiment: "exp").first?.decision.registryGeneration == 2)

            let third = try await registry.promote("c", actor: "bo", reason: "hotfix", evidence: .override(reason: "urgent"), expectedGeneration: 2)
            #expect(third.overrideReason == "urgent")
            let back = try await registry.rollback(to: nil, actor: "bo", reason: "regression", expectedGeneration: 3)
            #expect(back.to == "b" && back.generation == 4)
            let to = try await registry.rollback(to: "a", actor: "bo", reason: "further", expectedGeneration: nil)
            #expect(to.to == "a")
            let history = try await registry.history()
            #expect(history.map(\.generation) == [1, 2, 3, 4, 5])
            #expect(history.map(\.reason) == ["beats popularity", "shipped", "hotfix", "regression", "further"])
            #expect(try await registry.production().model == "a")
            #expect(try await registry.model("c")?.status == .retired)
            #expect(try await registry.model("a")?.status == .production)
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func concurrentPromotersGetAClearConflict(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            for id in ["a", "b", "c"] { try await registry.register(Self.model(id)) }
            try await registry.promote("a", actor: "x", reason: "r", evidence: .override(reason: "setup"), expectedGeneration: 0)
            let one = Task { try await registry.promote("b", actor: "one", reason: "r", evidence: .override(reason: "race"), expectedGeneration: 1) }
            let two = Task { try await registry.promote("c", actor: "two", reason: "r", evidence: .override(reason: "race"), expectedGeneration: 1) }
            let results = [await one.result, await two.result]
            let failures = results.compactMap { result -> String? in if case let .failure(error) = result { return "\(error)" } else { return nil } }
            #expect(failures.count == 1 && failures.allSatisfy { $0.contains("moved to generation") })
            #expect(try await registry.history().map(\.generation) == [1, 2])
        }
    }

    @Test(arguments: StoreBackend.enabled)
    func experimentsPhasesIncidentsAndServingConfiguration(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            for id in ["a", "b"] { try await registry.register(Self.model(id)) }
            try await registry.promote("a", actor: "x", reason: "r", evidence: .override(reason: "setup"), expectedGeneration: 0)
            var spec = ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
                                                                         ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)],
                                      successMetrics: ["plays_per_user"])
            try await registry.create(spec)
            let before = try await registry.servingVersion()
            try await registry.start(experiment: "exp")
            #expect(try await registry.servingVersion() == before + 1)
            let running = try await registry.servingConfiguration()
            #expect(running.production == "a" && running.productionGeneration == 1 && running.experiments.map(\.spec.id) == ["exp"])
            spec.arms[0].weight = 0.8
            spec.arms[1].weight = 0.2
            try await registry.changePhase(of: "exp", to: spec, reason: "ramp down")
            let phases = try await registry.phases(of: "exp")
            #expect(phases.map(\.phase) == [1, 2] && phases[0].endedAt != nil && phases[1].spec.arms[0].weight == 0.8)
            try await registry.stop(experiment: "exp")
            #expect(try await registry.servingConfiguration().experiments.isEmpty)
            await #expect(throws: DuetError.self) { try await registry.start(experiment: "exp") }
            let incident = try await registry.add(Incident(from: 10, until: 20, reason: "outage", createdAt: 1))
            #expect(try await registry.incidents().map(\.id) == [incident])
            await #expect(throws: DuetError.self) { try await registry.add(Incident(from: 20, until: 10, reason: "backwards", createdAt: 1)) }

            #expect(try await stores.serve.source.servingConfiguration().production == "a")
        }
    }

    /// Serve's connections, past every Swift guard: the database itself must refuse each write to the
    /// registry, and any update or delete of the event log, while reads and appends go through.
    @Test(arguments: StoreBackend.enabled)
    func databaseRefusesServesWrites(backend: StoreBackend) async throws {
        try await withStores(backend) { stores in
            let registry = stores.registry
            for id in ["a", "b"] { try await registry.register(Self.model(id)) }
            try await registry.promote("a", actor: "x", reason: "r", evidence: .override(reason: "setup"), expectedGeneration: 0)
            try await stores.eventLog.append(events: [Self.event(1)])
            let serve = stores.serve
            let version = try await serve.source.servingVersion()
            #expect(try await serve.source.servingConfiguration().production == "a")
            #expect(try await serve.sink.append(events: [Self.event(2)]) != nil)
            #expect(try await serve.sink.append(exposures: [Exposure(requestID: "r-serve", user: "u", timestamp: 1, items: ["t1"],
                                                                     bundleID: "a", experiments: [])]) != nil)
            // Serve's role may store a batch under a key, and a retry under that key stores nothing.
            let first = try await serve.sink.append(events: [Self.event(3), Self.event(4)], batchKey: "batch-1")
            #expect(first.accepted == 2 && !first.repeated && first.lastSequence != nil)
            #expect(try await serve.sink.append(events: [Self.event(3), Self.event(4)], batchKey: "batch-1")
                    == BatchReceipt(lastSequence: first.lastSequence, accepted: 2, repeated: true))
            #expect(try await serve.sink.append(events: [Self.event(5)], batchKey: "batch-2").repeated == false)
            let registryWrites = [
                "UPDATE serving_state SET version = version + 1",
                "INSERT INTO models (id, name, kind, snapshot, created_at, status) VALUES ('z', 'z', 'als', 's', 0, 'candidate')",
                "UPDATE models SET status = 'retired' WHERE id = 'a'",
                "DELETE FROM production_history",
                "INSERT INTO incidents (starts_at, ends_at, reason, source, created_at) VALUES (1, 2, 'x', 'manual', 0)",
                "UPDATE experiments SET status = 'running'",
            ]
            for sql in registryWrites {
                await #expect("Serve's registry connection: \(sql)") { try await serve.executeOnRegistryConnection(sql) } throws: { error in
                    let refusal = databaseRefusal(error)
                    return refusal.contains("readonly") || refusal.contains("42501")
                }
            }
            // The event log is append-only for everyone; PostgreSQL refuses Serve's role before the trigger runs.
            for sql in ["UPDATE events SET weight = 0", "DELETE FROM events", "UPDATE exposures SET user_id = 'x'", "DELETE FROM exposures",
                        "UPDATE ingest_batches SET accepted = 0", "DELETE FROM ingest_batches"] {
                let statement = backend == .sqlite ? sql.replacingOccurrences(of: "user_id", with: "user") : sql
                await #expect("Serve's event connection: \(statement)") { try await serve.executeOnEventConnection(statement) } throws: { error in
                    let refusal = databaseRefusal(error)
                    return refusal.contains("append-only") || refusal.contains("42501")
                }
                await #expect("the Lab's connection: \(statement)") { try await stores.executeAsLab(statement) } throws: { error in
                    databaseRefusal(error).contains("append-only")
                }
            }
            #expect(try await registry.servingVersion() == version)
            #expect(try await registry.production().model == "a")
            #expect(try await stores.eventLog.count(matching: EventFilter()) == 5, "1 by the Lab, 1 by Serve, 2 under batch-1 once, 1 under batch-2")
        }
    }
}
