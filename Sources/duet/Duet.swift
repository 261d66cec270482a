import ArgumentParser
import DuetBench
import DuetCore

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
        version: DuetBuild.version,
        subcommands: [DemoCommand.self, ServeCommand.self, KeyCommand.self, SimilarCommand.self, WorldCommand.self, ImportCommand.self, LabCommand.self,
                      EventsCommand.self, BenchCommand.self, ConfigCommand.self]
    )
}
