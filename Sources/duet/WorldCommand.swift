import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import Foundation

struct WorldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world",
        abstract: "Synthetic music worlds that know the truth.",
        subcommands: [Generate.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a seeded, deterministic catalogue with listeners and their histories.",
            discussion: """
                Writes world.json (the spec), catalog.jsonl (tracks with artists and genres) and \
                events.tsv (user, item, kind, weight, timestamp) to a new folder, streaming, so memory \
                stays flat at any size. The same spec always gives the same bytes.
                """
        )

        @Option(help: "The folder to create.") var out: String
        @Option(help: "Random seed.") var seed: UInt64 = 42
        @Option(help: "Listeners.") var users: Int = 5_000
        @Option(help: "Tracks (the items).") var tracks: Int = 20_000
        @Option(help: "Artists (default: tracks / 10).") var artists: Int?
        @Option(help: "Genres.") var genres: Int = 16
        @Option(help: "Approximate number of events.") var events: Int = 250_000
        @Option(help: "Days of history.") var days: Int = 28
        @Option(help: "Dimension of the latent taste space.") var dimension: Int = 16
        @Option(help: "Worker threads (the output does not depend on it).") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @OptionGroup var output: OutputOptions

        func run() throws {
            let spec = WorldSpec(seed: seed, users: users, tracks: tracks, artists: artists, genres: genres,
                                 events: events, dimension: dimension, days: days)
            let world = try World(spec: spec)
            let bar = ProgressBar("generating", total: events, unit: "events", quiet: output.json)
            let summary = try WorldGenerator(world: world, threads: threads)
                .generate(into: URL(fileURLWithPath: out)) { bar.update($0) }
            bar.finish()
            if output.json { return try printJSON(summary) }
            print("World written to \(out) in \(String(format: "%.1f", summary.seconds)) s")
            print("  \(spec.users) users, \(spec.tracks) tracks by \(spec.artists) artists in \(spec.genres) genres")
            print("  \(summary.events) events: \(summary.plays) plays, \(summary.skips) skips, \(summary.saves) saves over \(spec.days) days")
        }
    }
}
