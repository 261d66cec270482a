import DuetCore
import DuetStore
import Testing

/// The registry's rules, table-driven, with no database: each case is the state the backend would
/// read, a request, and the row or the refusal expected. The backend conformance suite then runs
/// the same rules through SQLite and PostgreSQL.
@Suite struct RegistryRulesTests {
    static func spec(_ id: String, control: String, treatment: String) -> ExperimentSpec {
        ExperimentSpec(id: id, hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: control, weight: 0.5),
                                                      ExperimentArm(name: "treatment", bundleID: treatment, weight: 0.5)],
                       successMetrics: ["plays_per_user"])
    }

    struct PromotionCase: Sendable, CustomTestStringConvertible {
        var name: String
        var production: RegistryRules.Production
        var status: ModelStatus? = .candidate
        var evaluation: Int64? = 7
        var ships: [RegistryRules.ShipDecision] = []
        var evidence: PromotionEvidence = .rules
        var expectedGeneration: Int? = nil
        /// A text the refusal must contain, or nil when the promotion must pass.
        var refusal: String?
        var testDescription: String { name }
    }

    static let none = RegistryRules.Production(generation: 0, model: nil)
    static let a = RegistryRules.Production(generation: 3, model: "a")

    static let promotions: [PromotionCase] = [
        PromotionCase(name: "first promotion rests on an evaluation", production: none, refusal: nil),
        PromotionCase(name: "first promotion without an evaluation", production: none, evaluation: nil, refusal: "has no offline evaluation"),
        PromotionCase(name: "no evaluation against production", production: a, evaluation: nil, refusal: "against the current production model a"),
        PromotionCase(name: "no ship decision", production: a, refusal: "no recorded decision ships model b"),
        PromotionCase(name: "ship decision against production", production: a,
                      ships: [.init(id: 4, arm: "treatment", spec: spec("e", control: "a", treatment: "b"))], refusal: nil),
        PromotionCase(name: "ship decision against another control", production: a,
                      ships: [.init(id: 4, arm: "treatment", spec: spec("e", control: "z", treatment: "b"))],
                      refusal: "which is not the current production model"),
        PromotionCase(name: "decision that shipped another arm", production: a,
                      ships: [.init(id: 4, arm: "control", spec: spec("e", control: "a", treatment: "b"))], refusal: "no recorded decision"),
        PromotionCase(name: "override needs no evidence", production: a, evaluation: nil, evidence: .override(reason: "hotfix"), refusal: nil),
        PromotionCase(name: "override needs a reason", production: a, evidence: .override(reason: "  "), refusal: "override reason"),
        PromotionCase(name: "stale generation", production: a, evidence: .override(reason: "x"), expectedGeneration: 2,
                      refusal: "moved to generation 3 (expected 2)"),
        PromotionCase(name: "unregistered model", production: a, status: nil, evidence: .override(reason: "x"), refusal: "no model named"),
        PromotionCase(name: "rejected model", production: a, status: .rejected, evidence: .override(reason: "x"), refusal: "was rejected"),
        PromotionCase(name: "already in production", production: .init(generation: 3, model: "b"), evidence: .override(reason: "x"),
                      refusal: "already in production"),
    ]

    @Test(arguments: promotions)
    func promotion(_ testCase: PromotionCase) throws {
        let request = RegistryRules.PromotionRequest(model: "b", actor: "ana", reason: "why", evidence: testCase.evidence,
                                                     expectedGeneration: testCase.expectedGeneration)
        let facts = RegistryRules.PromotionFacts(production: testCase.production, candidateStatus: testCase.status,
                                                 evaluationAgainstCurrent: testCase.evaluation, ships: testCase.ships)
        do {
            let change = try RegistryRules.promote(request, facts: facts, at: 99)
            #expect(testCase.refusal == nil, "expected a refusal containing '\(testCase.refusal ?? "")'")
            #expect(change.generation == testCase.production.generation + 1 && change.from == testCase.production.model && change.to == "b")
            #expect(change.changedAt == 99 && change.action == .promote)
            if case let .override(reason) = testCase.evidence {
                #expect(change.overrideReason == reason && change.evaluationID == nil && change.decisionID == nil)
            } else {
                #expect(change.evaluationID == testCase.evaluation && change.overrideReason == nil)
                #expect(change.decisionID == testCase.ships.first?.id)
            }
        } catch {
            let refusal = try #require(testCase.refusal, "unexpected refusal: \(error)")
            #expect("\(error)".contains(refusal), "\(error)")
        }
    }

    @Test func rollback() throws {
        let facts = RegistryRules.RollbackFacts(production: .init(generation: 3, model: "c"), previous: "b", served: ["a", "b", "c"])
        let back = try RegistryRules.rollback(.init(target: nil, actor: "bo", reason: "r", expectedGeneration: 3), facts: facts, at: 5)
        #expect(back.to == "b" && back.from == "c" && back.generation == 4 && back.action == .rollback)
        #expect(try RegistryRules.rollback(.init(target: "a", actor: "bo", reason: "r", expectedGeneration: nil), facts: facts, at: 5).to == "a")
        let refusals: [(RegistryRules.RollbackRequest, RegistryRules.RollbackFacts, String)] = [
            (.init(target: "z", actor: "bo", reason: "r", expectedGeneration: nil), facts, "never served"),
            (.init(target: "c", actor: "bo", reason: "r", expectedGeneration: nil), facts, "already in production"),
            (.init(target: nil, actor: "bo", reason: "r", expectedGeneration: 2), facts, "moved to generation 3"),
            (.init(target: nil, actor: "", reason: "r", expectedGeneration: nil), facts, "actor"),
            (.init(target: nil, actor: "bo", reason: "r", expectedGeneration: nil), .init(production: .init(generation: 1, model: "a"), previous: nil, served: ["a"]),
             "first promotion"),
            (.init(target: nil, actor: "bo", reason: "r", expectedGeneration: nil), .init(production: .init(generation: 0, model: nil), previous: nil, served: []),
             "nothing is in production"),
        ]
        for (request, facts, text) in refusals {
            #expect { try RegistryRules.rollback(request, facts: facts, at: 5) } throws: { "\($0)".contains(text) }
        }
    }

    @Test func experimentLifecycleAndDecisions() throws {
        let spec = Self.spec("e", control: "a", treatment: "b")
        #expect(try RegistryRules.create(spec, exists: false, registered: ["a", "b"]).status == .draft)
        #expect { try RegistryRules.create(spec, exists: true, registered: ["a", "b"]) } throws: { "\($0)".contains("already exists") }
        #expect { try RegistryRules.create(spec, exists: false, registered: ["a"]) } throws: { "\($0)".contains("arm 'treatment'") }
        try RegistryRules.move("e", from: .draft, to: .running)
        #expect { try RegistryRules.move("e", from: .stopped, to: .running) } throws: { "\($0)".contains("is stopped and cannot become running") }
        #expect { try RegistryRules.move("e", from: nil, to: .running) } throws: { "\($0)".contains("no experiment named") }
        let next = try RegistryRules.changePhase(of: "e", to: spec, reason: "ramp", current: (.running, 2), registered: ["a", "b"])
        #expect(next.phase == 3 && next.spec.status == .running)
        #expect { try RegistryRules.changePhase(of: "e", to: spec, reason: "ramp", current: (.stopped, 2), registered: ["a", "b"]) } throws: {
            "\($0)".contains("only a running experiment")
        }
        #expect { try RegistryRules.changePhase(of: "other", to: spec, reason: "ramp", current: (.running, 2), registered: ["a", "b"]) } throws: {
            "\($0)".contains("cannot rename")
        }
        let decision = Decision(experimentID: "e", outcome: .ship, arm: "treatment", reviewer: "ana", reason: "up",
                                analysisHash: String(repeating: "ab", count: 32), decidedAt: 1)
        let ana = Person(name: "ana", team: "recs", contact: "ana@example.com", createdAt: 0)
        var unreviewed = spec
        unreviewed.approvalsRequired = 0
        try RegistryRules.record(decision, experiment: (.stopped, unreviewed), review: [], reviewer: ana)
        #expect { try RegistryRules.record(decision, experiment: (.running, unreviewed), review: [], reviewer: ana) } throws: { "\($0)".contains("before deciding") }
        #expect { try RegistryRules.record(decision, experiment: (.stopped, unreviewed), review: [], reviewer: nil) } throws: { "\($0)".contains("nobody named 'ana'") }
        var wrongArm = decision
        wrongArm.arm = "nope"
        #expect { try RegistryRules.record(wrongArm, experiment: (.stopped, unreviewed), review: [], reviewer: ana) } throws: { "\($0)".contains("has no arm 'nope'") }
        #expect { try RegistryRules.add(Incident(from: 5, until: 5, reason: "x", createdAt: 0)) } throws: { "\($0)".contains("before --to") }
        #expect { try RegistryRules.changeStatus(of: "a", from: .production, to: .retired) } throws: { "\($0)".contains("only through promote") }
        #expect { try RegistryRules.register(ModelRecord(id: "m", name: "m", kind: "als", snapshot: "s", parent: nil, createdAt: 0), alreadyRegistered: true) } throws: {
            "\($0)".contains("already registered")
        }
    }
}
