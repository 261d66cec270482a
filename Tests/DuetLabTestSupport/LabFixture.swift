public import DuetLab
public import DuetCore
import DuetStore
import DuetTraining
public import Foundation
import DuetTestSupport
import Testing

/// A small home with a snapshot, a split and two trained candidates.
public struct LabFixture: Sendable {
    public let lab: Lab
    public let split: String
    public let first: String
    public let second: String

    public static func make(in folder: URL) async throws -> LabFixture {
        let world = try World(spec: WorldSpec(seed: 3, users: 300, tracks: 600, events: 15_000))
        let worldFolder = folder.appendingPathComponent("world")
        _ = try WorldGenerator(world: world).generate(into: worldFolder)
        let home = DuetHome(root: folder.appendingPathComponent("home"))
        let lab = try Lab(home: home)
        // One replica per test: it switches on sight (the cutover tests set a delay of their own).
        try await lab.registry.setCutoverDelay(milliseconds: 0)
        let report = try await ImportPipeline.run(Importer(source: .world(folder: worldFolder.path)), into: .snapshot(lab.snapshots))
        let snapshot = try #require(report.snapshot).hash
        let split = try lab.split(snapshot: snapshot, method: .random(testFraction: 0.2, seed: 1)).id
        var als = ALSConfiguration()
        als.factors = 8
        als.iterations = 4
        let first = try await lab.train(snapshot: snapshot, split: split, algorithm: .als(als), name: "first", register: true).bundleID
        als.factors = 12
        let second = try await lab.train(snapshot: snapshot, split: split, algorithm: .als(als), name: "second", register: true).bundleID
        // Reviewers: carol authors experiments, the others review them.
        for (name, team) in [("ana", "recs"), ("bob", "recs"), ("carol", "growth"), ("dave", "search")] {
            _ = try await lab.addPerson(name, team: team, contact: "\(name)@example.com")
        }
        return LabFixture(lab: lab, split: split, first: first, second: second)
    }

    /// Exposures and plays written straight to the log, as Serve would have: treatment users play more.
    public static func traffic(_ log: any EventSink, spec: ExperimentSpec, phase: Int, users: Range<Int>, at time: EpochMillis) async throws {
        var exposures: [Exposure] = []
        var events: [FeedbackEvent] = []
        for user in users {
            let id = "u\(user)"
            guard let arm = spec.assignedArm(for: id) else { continue }
            let request = "r-\(phase)-\(user)"
            exposures.append(Exposure(requestID: request, user: id, timestamp: time, items: ["t1"], bundleID: arm.bundleID,
                                      experiments: [ExperimentArmExposure(experimentID: spec.id, phase: phase, assigned: arm.name, served: arm.name)]))
            for play in 0..<(arm.name == "treatment" ? 3 + user % 3 : 1 + user % 3) {
                events.append(FeedbackEvent(user: id, item: "t\(play)", kind: .play, weight: 1, timestamp: time + 10, requestID: request))
            }
        }
        _ = try await log.append(exposures: exposures)
        _ = try await log.append(events: events)
    }
}
