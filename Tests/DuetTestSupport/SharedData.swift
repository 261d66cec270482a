public import Foundation

/// Locates `../shared` (the project's shared data, never copied into the repository) and
/// scratch folders for tests.
public enum SharedData {
    /// `$DUET_SHARED`, or the `shared` folder beside the package.
    public static var root: URL {
        if let path = ProcessInfo.processInfo.environment["DUET_SHARED"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }

    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    public static func file(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    public static func exists(_ relative: String) -> Bool {
        FileManager.default.fileExists(atPath: file(relative).path)
    }

    public static let growthBookCases = "conformance/growthbook-cases.json"
    public static let lastfm = "data/lastfm-hetrec2011"
}

/// A fresh folder under the system's temporary folder, removed when `body` returns.
public func withScratchFolder<T>(_ body: (URL) async throws -> T) async rethrows -> T {
    let folder = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("duet-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    return try await body(folder)
}

/// Writes `text` to `name` inside `folder` and returns its path.
@discardableResult
public func writeFile(_ text: String, named name: String, in folder: URL) throws -> String {
    let url = folder.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(text.utf8).write(to: url)
    return url.path
}
