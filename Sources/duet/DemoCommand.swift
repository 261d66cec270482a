import ArgumentParser
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Walk the path on a synthetic world, printing what happens.",
        discussion: """
            Today: generate a world, ingest it into the event log and freeze a snapshot. Training, \
            the registry, serving and experiments join the story as they land.
            """
    )

    @Option(help: "Working folder (default: a new folder under the system's temporary folder).") var home: String?
    @Flag(help: "Leave the working folder in place when done.") var keep = false
    @Option(help: "Listeners in the world.") var users: Int = 5_000
    @Option(help: "Tracks in the world.") var tracks: Int = 20_000
    @Option(help: "Approximate events in the world.") var events: Int = 250_000

    func run() async throws {
        let root = URL(fileURLWithPath: home ?? NSTemporaryDirectory()).appendingPathComponent(home == nil ? "duet-demo-\(UUID().uuidString.prefix(8))" : "")
        if FileManager.default.fileExists(atPath: root.appendingPathComponent("events.sqlite").path) {
            throw DuetError.refused("\(root.path) already holds an event log; the demo needs a fresh folder")
        }
        let duetHome = DuetHome(root: root)
        try duetHome.prepare()
        let clock = ContinuousClock()
        let started = clock.now
        print("Duet demo in \(root.path)\n")

        print("1. Generate a synthetic music world")
        let spec = WorldSpec(users: users, tracks: tracks, events: events)
        let world = try World(spec: spec)
        let worldFolder = duetHome.worldsFolder.appendingPathComponent("demo")
        let summary = try WorldGenerator(world: world).generate(into: worldFolder)
        print("   \(spec.users) listeners, \(spec.tracks) tracks by \(spec.artists) artists in \(spec.genres) genres")
        print("   \(summary.events) events over \(spec.days) days (\(summary.plays) plays, \(summary.skips) skips, \(summary.saves) saves) in \(String(format: "%.1f", summary.seconds)) s")

        print("\n2. Ingest it into the event log (one durable transaction)")
        let log = try SQLiteEventLog(path: duetHome.eventLogPath.path)
        let importer = Importer(source: .world(folder: worldFolder.path))
        let report = try ImportPipeline.run(importer, into: .eventLog(log))
        if let catalog = try importer.readCatalog() { try HomeCatalog(home: duetHome).merge(catalog) }
        print("   \(report.eventsAppended ?? 0) events appended in \(String(format: "%.1f", report.seconds)) s")

        print("\n3. Freeze a snapshot for training (plays and saves; skips are left out)")
        let info = try await ImportPipeline.snapshotFromEventLog(log, store: SnapshotStore(home: duetHome), from: nil, until: nil,
                                                                 kinds: nil, catalog: try HomeCatalog(home: duetHome).load())
        print("   snapshot \(info.hash.prefix(16))…: \(info.users) users, \(info.items) items, \(info.interactions) interactions")

        print("\nNot yet part of the demo: training, the registry, Serve and A/B tests (see the open issues).")
        print(String(format: "Done in %.1f s.", (clock.now - started).seconds))
        if keep {
            print("Kept \(root.path). Inspect it with: duet lab snapshot info --home \(root.path)")
        } else {
            try? FileManager.default.removeItem(at: root)
        }
    }
}
