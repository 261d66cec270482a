public import DuetCore
public import DuetTraining
public import Foundation

/// An extra file for a bundle (e.g. a similarity index), written through a hashing writer.
public struct BundleAttachment {
    public var name: String
    public var write: (AtomicFileWriter) throws -> Void
    public var index: IndexDescriptor?

    public init(name: String, index: IndexDescriptor? = nil, write: @escaping (AtomicFileWriter) throws -> Void) {
        self.name = name
        self.index = index
        self.write = write
    }
}

/// Writes immutable bundles: everything goes into a temporary folder, each file fsynced with its
/// SHA-256 recorded in the manifest, then the folder is renamed to the SHA-256 of `manifest.json`.
/// A crash leaves a stray temporary folder, never a half-written bundle under a real name.
public enum BundleWriter {
    public static func write(_ model: FactorModel, name: String, snapshot: Snapshot, history: InteractionMatrix,
                             catalog: [String: CatalogItem], parent: String? = nil, recipe: String? = nil, attachments: [BundleAttachment] = [],
                             into bundles: URL) throws -> String {
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: bundles, withIntermediateDirectories: true)
        let staging = bundles.appendingPathComponent(".tmp-\(UUID().uuidString)")
        try fileManager.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            var files: [String: BundleFile] = [:]
            func file(_ fileName: String, _ body: (AtomicFileWriter) throws -> Void) throws {
                let writer = try AtomicFileWriter(folder: staging)
                try body(writer)
                let hash = writer.sha256Hex
                let size = writer.bytesWritten
                try writer.commit(to: staging.appendingPathComponent(fileName))
                files[fileName] = BundleFile(sha256: hash, bytes: size)
            }
            if model.dimension > 0 {
                try file(BundleFiles.userFactors) { try $0.write(array: model.userFactors) }
                try file(BundleFiles.itemFactors) { try $0.write(array: model.itemFactors) }
            }
            try file(BundleFiles.popularity) { try $0.write(array: model.itemPopularity) }
            try file(BundleFiles.userIDs) { writer in
                for user in 0..<snapshot.userCount { try writer.write(Array((snapshot.userID(user) + "\n").utf8)) }
            }
            try file(BundleFiles.itemIDs) { writer in
                for item in 0..<snapshot.itemCount { try writer.write(Array((snapshot.itemID(item) + "\n").utf8)) }
            }
            try file(BundleFiles.history) { writer in
                try writer.write(array: history.rowStart.map { UInt64($0) })
                try writer.write(array: history.indices)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            if !catalog.isEmpty {
                try file(BundleFiles.catalog) { writer in
                    for item in 0..<snapshot.itemCount {
                        if let entry = catalog[snapshot.itemID(item)] {
                            try writer.write(Array(try encoder.encode(entry)))
                            try writer.write([0x0A])
                        }
                    }
                }
            }
            var indexes: [IndexDescriptor] = []
            for attachment in attachments {
                try file(attachment.name, attachment.write)
                if let index = attachment.index { indexes.append(index) }
            }
            let manifest = BundleManifest(
                name: name, modelKind: model.kind, hyperparameters: model.hyperparameters, snapshotHash: snapshot.hash,
                createdAt: Date().epochMillis,
                counts: BundleCounts(users: snapshot.userCount, items: snapshot.itemCount, interactions: history.nonZeroCount),
                dimension: model.dimension, files: files, indexes: indexes, parent: parent, recipe: recipe)
            try manifest.validate()
            let manifestData = try manifest.canonicalJSON()
            let id = ModelBundle.sha256Hex(manifestData)
            try file(BundleFiles.manifest) { try $0.write(Array(manifestData)) }
            AtomicFileWriter.syncFolder(staging)
            let destination = bundles.appendingPathComponent(id)
            if fileManager.fileExists(atPath: destination.path) {
                try? fileManager.removeItem(at: staging)
            } else {
                try fileManager.moveItem(at: staging, to: destination)
                AtomicFileWriter.syncFolder(bundles)
            }
            return id
        } catch {
            try? fileManager.removeItem(at: staging)
            throw error
        }
    }
}
