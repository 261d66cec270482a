import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetStore
import Foundation

struct PeopleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "people",
        abstract: "The people who act in the Lab, their teams, and their dashboard sign-in tokens.",
        subcommands: [Add.self, List.self, Token.self],
        defaultSubcommand: List.self
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a person with their team.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Their name (letters, digits, . _ -).") var name: String
        @Option(help: "Their team.") var team: String
        @Option(help: "How to reach them.") var contact: String
        @Flag(help: "Also issue a dashboard sign-in token, printed once.") var token = false
        func run() async throws {
            let lab = try await home.lab()
            let person = try await lab.addPerson(name, team: team, contact: contact)
            print("\(person.name) registered in team \(person.team)")
            if token { print("sign-in token (shown once): \(try await lab.issueSignInToken(for: name))") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered people.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        func run() async throws {
            let people = try await home.lab().registry.people()
            if output.json { return try printJSON(people) }
            for person in people { print("\(person.name)  team \(person.team)  \(person.contact)") }
        }
    }

    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new dashboard sign-in token (the old one stops working).")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Their name.") var name: String
        func run() async throws {
            print(try await home.lab().issueSignInToken(for: name))
        }
    }
}

struct OwnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "owner",
        abstract: "Name the team that owns a model or a metric, and whom to ask.",
        discussion: "Promoting a model another team owns needs that team: the person promoting is in it, or someone in it approved the ship decision.",
        subcommands: [Model.self, Metric.self, List.self],
        defaultSubcommand: List.self
    )

    struct Model: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the team owning a model.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Bundle id or prefix.") var model: String
        @Option(help: "The owning team.") var team: String
        @Option(help: "Whom to ask.") var contact: String
        func run() async throws {
            try await home.lab().setOwner(Owner(team: team, contact: contact), model: model)
            print("model \(model) is owned by \(team) (\(contact))")
        }
    }

    struct Metric: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set the team owning a metric.")
        @OptionGroup var home: HomeOptions
        @Argument(help: "Metric name, e.g. plays_per_user.") var metric: String
        @Option(help: "The owning team.") var team: String
        @Option(help: "Whom to ask.") var contact: String
        func run() async throws {
            try await home.lab().setOwner(Owner(team: team, contact: contact), metric: metric)
            print("metric \(metric) is owned by \(team) (\(contact))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Owners of models and metrics.")
        @OptionGroup var home: HomeOptions
        func run() async throws {
            let lab = try await home.lab()
            for model in try await lab.registry.models() where model.owner != nil {
                print("model \(model.id.prefix(12)) \(model.name): \(model.owner!.team) (\(model.owner!.contact))")
            }
            for (metric, owner) in try await lab.registry.metricOwners().sorted(by: { $0.key < $1.key }) {
                print("metric \(metric): \(owner.team) (\(owner.contact))")
            }
        }
    }
}
