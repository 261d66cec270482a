public import Foundation

/// The folder that holds one deployment's state, so two deployments never mix.
/// Resolved from `--home`, then `DUET_HOME`, then `./duet-home`.
public struct DuetHome: Sendable, Hashable {
    public let root: URL

    public init(root: URL) { self.root = root.standardizedFileURL }

    public static func resolve(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> DuetHome {
        let path = flag ?? environment["DUET_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "duet-home"
        return DuetHome(root: URL(fileURLWithPath: path))
    }

    public var registryPath: URL { root.appendingPathComponent("registry.sqlite") }
    public var eventLogPath: URL { root.appendingPathComponent("events.sqlite") }
    public var bundlesFolder: URL { root.appendingPathComponent("bundles", isDirectory: true) }
    public var snapshotsFolder: URL { root.appendingPathComponent("snapshots", isDirectory: true) }
    public var worldsFolder: URL { root.appendingPathComponent("worlds", isDirectory: true) }
    /// Similarity index artefacts, each a content-addressed folder like a bundle.
    public var indexesFolder: URL { root.appendingPathComponent("indexes", isDirectory: true) }
    public var tempFolder: URL { root.appendingPathComponent("tmp", isDirectory: true) }

    /// Creates the folders a command is about to write into.
    public func prepare() throws(DuetError) {
        for folder in [root, bundlesFolder, snapshotsFolder, tempFolder] {
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            } catch {
                throw .io(path: folder.path, reason: "cannot create folder: \(error.localizedDescription)")
            }
        }
    }
}
