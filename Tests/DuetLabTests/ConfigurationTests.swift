import DuetTestSupport
import Foundation
import Testing

/// One configuration file, DUET_* variables and flags, through the real `duet` binary: precedence,
/// redaction, and bad files refused by name before anything runs.
@Suite struct ConfigurationTests {
    struct Run {
        var status: Int32
        var output: String
        var errors: String
    }

    static func duet(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        let binary = CrashSafetyTests.duetBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "duet must be built at \(binary.path)")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        // Only what the test sets: a developer's own DUET_* variables must not leak in.
        var inherited = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DUET_") }
        inherited.merge(environment) { $1 }
        process.environment = inherited
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile(), err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self), errors: String(decoding: err, as: UTF8.self))
    }

    struct Row: Decodable {
        var key: String
        var value: String?
        var source: String
    }

    @Test func flagsBeatTheEnvironmentWhichBeatsTheFileAndSecretsNeverShow() async throws {
        try await withScratchFolder { folder in
            let file = folder.appendingPathComponent("duet.json")
            try Data(#"""
            {"home": "/from/file", "registry": "postgres://duet:hunter2@db:5432/duet?sslmode=verify-full",
             "serve": {"port": 9090, "logFormat": "json", "accessLogSample": 0.25, "host": "0.0.0.0"}}
            """#.utf8).write(to: file)
            let run = try Self.duet(["config", "print", "--config", file.path, "--home", "/from/flag", "--json"],
                                    environment: ["DUET_PORT": "7070", "DUET_HOST": "", "DUET_API_KEY": "s3cret-api-key-0123456789"])
            #expect(run.status == 0, "\(run.errors)")
            let rows = try JSONDecoder().decode([Row].self, from: Data(run.output.utf8))
            let byKey = Dictionary(uniqueKeysWithValues: rows.map { ($0.key, $0) })
            #expect(byKey["home"]?.value == "/from/flag" && byKey["home"]?.source == "flag")
            #expect(byKey["serve.port"]?.value == "7070" && byKey["serve.port"]?.source == "environment")
            #expect(byKey["serve.host"]?.value == "0.0.0.0" && byKey["serve.host"]?.source == "file", "an empty variable is unset")
            #expect(byKey["serve.logFormat"]?.value == "json" && byKey["serve.accessLogSample"]?.value == "0.25")
            #expect(byKey["serve.ef"]?.value == "32" && byKey["serve.ef"]?.source == "default")
            #expect(byKey["serve.keysFile"]?.source == "unset")
            #expect(byKey["registry"]?.value == "postgres://duet:REDACTED@db:5432/duet?sslmode=verify-full")
            #expect(byKey["serve.apiKey"]?.source == "environment")
            #expect(!run.output.contains("hunter2") && !run.output.contains("s3cret-api-key"))
            let text = try Self.duet(["config", "print"], environment: ["DUET_CONFIG": file.path, "DUET_API_KEY": "s3cret-api-key-0123456789"])
            #expect(text.output.contains("configuration file: \(file.path)") && text.output.contains("from serve.port in \(file.path)"))
            #expect(!text.output.contains("hunter2") && !text.output.contains("s3cret-api-key"))
        }
    }

    @Test func serveReadsTheFileAndBadFilesAreRefusedByName() async throws {
        try await withScratchFolder { folder in
            func write(_ name: String, _ text: String) throws -> String {
                let url = folder.appendingPathComponent(name)
                try Data(text.utf8).write(to: url)
                return url.path
            }
            let empty = folder.appendingPathComponent("empty-home").path
            // Serve takes its home from the file: it looks for the registry there.
            let homeOnly = try write("home.json", #"{"home": "\#(empty)"}"#)
            let serve = try Self.duet(["serve", "--config", homeOnly])
            #expect(serve.status != 0 && serve.errors.contains("\(empty)/registry.sqlite"), "\(serve.errors)")

            let badPort = try write("port.json", #"{"home": "\#(empty)", "serve": {"port": "eighty"}}"#)
            let typed = try Self.duet(["serve", "--config", badPort])
            #expect(typed.status != 0 && typed.errors.contains("serve.port in \(badPort)") && typed.errors.contains("'eighty' is not an integer"), "\(typed.errors)")
            let overridden = try Self.duet(["serve", "--config", badPort, "--port", "0"])
            #expect(!overridden.errors.contains("eighty"), "a flag wins, so the file's bad value is never read: \(overridden.errors)")
            let hugeLists = try write("lists.json", #"{"home": "\#(empty)", "serve": {"precomputedListsMB": 2000000}}"#)
            let ranged = try Self.duet(["serve", "--config", hugeLists])
            #expect(ranged.status != 0 && ranged.errors.contains("--precomputed-lists-mb must be 0–1048576"), "\(ranged.errors)")

            for (text, expected) in [(#"{"serve": {"prot": 1}}"#, "unknown setting 'serve.prot'"),
                                     (#"{"serve": {"apiKey": "x"}}"#, "'serve.apiKey' is a secret and comes only from the environment"),
                                     (#"{"lab": {"x": 1}}"#, "'lab' is not a section"),
                                     ("port = 8080", "is not a JSON object of settings")] {
                let path = try write("bad-\(UUID().uuidString).json", text)
                for arguments in [["config", "print", "--config", path], ["lab", "models", "--config", path]] {
                    let run = try Self.duet(arguments)
                    #expect(run.status != 0 && run.errors.contains(expected) && run.errors.contains(path), "\(arguments): \(run.errors)")
                }
            }
            let missing = try Self.duet(["config", "print", "--config", folder.appendingPathComponent("nope.json").path])
            #expect(missing.status != 0 && missing.errors.contains("nope.json"))
        }
    }
}
