import ArgumentParser
import DuetCore
import Foundation

@main
struct Duet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "duet",
        abstract: "Duet: a recommendation platform built as two systems, Serve and Lab.",
        discussion: """
            Serve answers live requests from immutable model bundles. Lab freezes data, trains and \
            evaluates models, runs A/B tests and promotes what wins. They meet only through the \
            registry and the event log, kept in one home folder (--home, DUET_HOME, or ./duet-home).
            """,
        version: "0.1.0",
        subcommands: [DemoCommand.self, ServeCommand.self, SimilarCommand.self, WorldCommand.self, ImportCommand.self, LabCommand.self,
                      EventsCommand.self, BenchCommand.self]
    )
}

/// `--home` and `--json`, shared by every command that touches a deployment.
struct HomeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The deployment's folder.", discussion: "Falls back to $DUET_HOME, then ./duet-home.", valueName: "dir"))
    var home: String?

    var resolved: DuetHome { DuetHome.resolve(flag: home) }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object instead of text, for scripts.")
    var json = false
}

/// Prints a Codable value as one line of JSON on stdout.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

