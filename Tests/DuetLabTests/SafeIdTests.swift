import DuetCore
import DuetLab
import DuetLabTestSupport
import DuetStore
import DuetTestSupport
import Foundation
import Testing

/// Ids that become paths (experiments' analyses, bundles' folders, splits) come from one safe
/// alphabet, checked where they enter; traversal never reaches the file system.
@Suite struct SafeIdTests {
    static let hostile = ["../escape", "..", "a/b", #"a\b"#, ".hidden", "x/../../y", "/etc/passwd", "exp\u{0}1", "ex p", "e\u{301}",
                          "%2e%2e%2fx", String(repeating: "a", count: 129), "-starts-with-dash", ""]

    @Test func theAlphabetRefusesTraversalAndKeepsOrdinaryIds() {
        for id in Self.hostile { #expect(Identifier.fileSafeProblem(with: id) != nil, "\(id.debugDescription) must be refused") }
        for id in ["als-48-vs-8", "exp1", "A.b_c-9", "a.b", String(repeating: "a", count: 128), "0123abcdef"] {
            #expect(Identifier.fileSafeProblem(with: id) == nil, "\(id) is safe")
        }
    }

    @Test func everyLabEntryRefusesAHostileIdAndWritesNothing() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            let before = try Self.files(under: folder)
            let arms = [ExperimentArm(name: "control", bundleID: fixture.first, weight: 0.5), ExperimentArm(name: "treatment", bundleID: fixture.second, weight: 0.5)]
            for id in Self.hostile {
                let spec = ExperimentSpec(id: id, hypothesis: "h", arms: arms, successMetrics: ["plays_per_user"])
                let attempts: [(String, () async throws -> Void)] = [
                    ("create", { try await lab.createExperiment(spec) }),
                    ("start", { try await lab.start(experiment: id) }),
                    ("stop", { try await lab.stop(experiment: id) }),
                    ("phase", { try await lab.changePhase(of: id, to: spec, reason: "r") }),
                    ("analyze", { _ = try await lab.analyze(experiment: id, eventLog: log) }),
                    ("latest analysis", { _ = try lab.latestAnalysis(of: id) }),
                    ("decide", { _ = try await lab.decide(experiment: id, outcome: .abandon, arm: nil, reviewer: "r", reason: "r", overrideReason: nil) }),
                    ("bundle folder", { _ = try lab.bundleFolder(id) }),
                    ("open bundle", { _ = try await lab.openBundle(id) }),
                    ("promote", { _ = try await lab.promote(id, actor: "t", reason: "r", override: "o") }),
                    ("rollback to", { _ = try await lab.rollback(to: id, actor: "t", reason: "r") }),
                    ("reject", { _ = try await lab.reject(id) }),
                    ("split", { _ = try lab.loadSplit(id) }),
                    ("arm bundle", {
                        try await lab.createExperiment(ExperimentSpec(id: "safe", hypothesis: "h", arms: [arms[0], ExperimentArm(name: "t", bundleID: id, weight: 0.5)],
                                                                      successMetrics: ["plays_per_user"]))
                    }),
                ]
                for (what, attempt) in attempts {
                    await #expect(throws: DuetError.self, "\(what) with \(id.debugDescription)") { try await attempt() }
                }
            }
            #expect(try Self.files(under: folder) == before, "a refused id wrote or moved a file")
            #expect(try await lab.registry.experiments().isEmpty)
        }
    }

    static func files(under folder: URL) throws -> Set<String> {
        let enumerator = FileManager.default.enumerator(atPath: folder.path)
        var paths = Set<String>()
        while let path = enumerator?.nextObject() as? String {
            // SQLite's WAL and shared-memory files change on any read.
            if !path.hasSuffix("-wal") && !path.hasSuffix("-shm") { paths.insert(path) }
        }
        return paths
    }
}
