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
