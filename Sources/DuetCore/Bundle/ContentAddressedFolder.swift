public import Foundation

/// Writes an immutable folder named by the SHA-256 of its manifest: every file goes into a
/// temporary folder through a hashing writer and is fsynced, the manifest (which lists their
/// checksums) last, then the folder is renamed into place. A crash leaves a stray temporary
/// folder, never a half-written artefact under a real name.
public final class ContentAddressedFolder {
    public private(set) var files: [String: BundleFile] = [:]
    let parent: URL
    let staging: URL

    private init(parent: URL) throws {
        self.parent = parent
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        staging = parent.appendingPathComponent(".tmp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
    }

    /// Adds one file, recording its checksum and size.
    public func file(_ name: String, _ body: (AtomicFileWriter) throws -> Void) throws {
        let writer = try AtomicFileWriter(folder: staging)
        try body(writer)
        let hash = writer.sha256Hex
        let size = writer.bytesWritten
        try writer.commit(to: staging.appendingPathComponent(name))
        files[name] = BundleFile(sha256: hash, bytes: size)
    }

    /// Runs `fill` to add the files, then writes the manifest `manifest` returns for them (as
    /// `manifest.json`) and moves the folder into `parent` under its id. Returns the id.
    public static func write(into parent: URL, fill: (ContentAddressedFolder) throws -> Void,
                             manifest: ([String: BundleFile]) throws -> Data) throws -> String {
        let folder = try ContentAddressedFolder(parent: parent)
        let fileManager = FileManager.default
        do {
            try fill(folder)
            let manifestData = try manifest(folder.files)
            let id = ModelBundle.sha256Hex(manifestData)
            try folder.file("manifest.json") { try $0.write(Array(manifestData)) }
            AtomicFileWriter.syncFolder(folder.staging)
            let destination = parent.appendingPathComponent(id)
            if fileManager.fileExists(atPath: destination.path) {
                try? fileManager.removeItem(at: folder.staging)
            } else {
                try fileManager.moveItem(at: folder.staging, to: destination)
                AtomicFileWriter.syncFolder(parent)
            }
            return id
        } catch {
            try? fileManager.removeItem(at: folder.staging)
            throw error
        }
    }
}
