import DuetTestSupport
import Foundation
import Testing

/// `duet demo` removes only a folder it made itself: a folder the user names is refused when it holds
/// anything, and kept afterwards.
@Suite struct DemoFolderTests {
    static func runDemo(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = CrashSafetyTests.duetBinary
        process.arguments = ["demo"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func aUsersFolderIsRefusedAndNothingInItIsTouched() throws {
        try #require(FileManager.default.isExecutableFile(atPath: CrashSafetyTests.duetBinary.path), "duet must be built")
        let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("duet-user-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let notes = folder.appendingPathComponent("notes.txt")
        try Data("mine".utf8).write(to: notes)

        let (status, output) = try Self.runDemo(["--home", folder.path, "--users", "200", "--tracks", "300", "--events", "2000"])
        #expect(status != 0)
        #expect(output.contains("is not empty"), "\(output)")
        #expect(try String(contentsOf: notes, encoding: .utf8) == "mine")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["notes.txt"])
    }
}
