import ArgumentParser
import DuetCommandLine
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "The settings Duet reads, and where each comes from.",
        discussion: """
            Every setting comes from a flag, a DUET_* environment variable, or the configuration file \
            (--config FILE or $DUET_CONFIG), in that order of precedence, else its default. The file is \
            JSON: top-level "home" and "registry", and a "serve" object with the settings of `duet serve` \
            in camelCase, e.g. {"home": "/var/lib/duet", "serve": {"port": 8080, "logFormat": "json"}}. \
            Unknown keys are refused by name. API keys come only from the environment or a keys file.
            """,
        subcommands: [Print.self]
    )

    struct Row: Codable {
        var key: String
        var value: String?
        var source: String
        var origin: String?
        var environment: String?
        var flag: String?
    }

    struct Print: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the effective settings with their sources; secrets (passwords in URLs, API keys) are redacted.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            let settings = home.settings
            let rows = DuetSettings.all.map { spec -> Row in
                let flag = spec == DuetSettings.home ? home.home : spec == DuetSettings.registry ? home.registry : nil
                let resolved = settings.text(spec, flag: flag)
                return Row(key: spec.key, value: resolved.map { SettingsResolver.redacted($0.text, secret: spec.secret) },
                           source: resolved?.source.rawValue ?? "unset", origin: resolved?.origin, environment: spec.environment, flag: spec.flag)
            }
            if output.json { return try printJSON(rows) }
            if let path = settings.file.path { print("configuration file: \(path)") } else { print("configuration file: none (--config or $DUET_CONFIG)") }
            let width = rows.map(\.key.count).max() ?? 0
            for row in rows {
                let key = row.key.padding(toLength: width, withPad: " ", startingAt: 0)
                let source = row.source == "unset" ? "unset" : row.source == "default" ? "default" : "from \(row.origin ?? row.source)"
                print("\(key)  \(row.value ?? "-")  (\(source))")
            }
        }
    }
}
