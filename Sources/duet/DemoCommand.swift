import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import Foundation

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The whole path on a synthetic world: data, training, serving, an A/B test, a decision, promotion and rollback.",
        discussion: """
            Runs in a new temporary folder, removed at the end unless --keep, or in --home, which must be \
            absent or empty and is always kept. Starts `duet serve` as a child process on loopback and \
            prints each step with its figures. Needs no network.
            """
    )

    @Option(help: "Working folder, kept afterwards; must not exist yet or be empty (default: a new temporary folder).") var home: String?
    @Flag(help: "Leave the folder and the server running, and print how to look around.") var keep = false
    @Option(help: "Listeners in the world.") var users: Int = 5_000
    @Option(help: "Tracks in the world.") var tracks: Int = 20_000
    @Option(help: "Approximate events in the world.") var events: Int = 250_000
    @Option(help: "Listeners simulated in each A/B test.") var listeners: Int = 3_000
    @Option(help: "Port for `duet serve` (default: a free one).") var port: Int?

    func run() async throws {
        let root: URL
        // Only a folder the demo made itself is ever removed.
        let madeHere: Bool
        if let home {
            root = URL(fileURLWithPath: home)
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
            guard contents.isEmpty else {
                throw DuetError.refused("\(root.path) is not empty; the demo needs a new or empty folder (it keeps it afterwards)")
            }
            madeHere = false
        } else {
            root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("duet-demo-\(UUID().uuidString.prefix(8))")
            madeHere = true
        }
        let story = try DemoStory(root: root, users: users, tracks: tracks, events: events, listeners: listeners, port: port)
        do {
            try await story.run()
        } catch {
            story.stopServer()
            throw error
        }
        if keep {
            print("""

                Everything is kept in \(root.path), and Serve is still running (pid \(story.serverPID)).
                  curl http://127.0.0.1:\(story.port)/v1/users/u1/recommendations?n=5
                  curl http://127.0.0.1:\(story.port)/metrics
                  duet lab dashboard --home \(root.path) --port 8090     # then open http://127.0.0.1:8090/
                  duet lab history --home \(root.path)
                  duet lab models --home \(root.path)
                  open the reports in \(root.appendingPathComponent("analyses").path)
                Stop the server with: kill \(story.serverPID)
                """)
            return
        }
        story.stopServer()
        if madeHere {
            try? FileManager.default.removeItem(at: root)
        } else {
            print("\nThe deployment is kept in \(root.path).")
        }
    }
}
