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

/// Writes immutable bundles as content-addressed folders (see `ContentAddressedFolder`).
public enum BundleWriter {
    public static func write(_ model: FactorModel, name: String, snapshot: Snapshot, history: InteractionMatrix,
                             catalog: [String: CatalogItem], parent: String? = nil, recipe: String? = nil, attachments: [BundleAttachment] = [],
                             into bundles: URL) throws -> String {
        try ContentAddressedFolder.write(into: bundles, fill: { folder in
            if model.dimension > 0 {
                try folder.file(BundleFiles.userFactors) { try $0.write(array: model.userFactors) }
                try folder.file(BundleFiles.itemFactors) { try $0.write(array: model.itemFactors) }
            }
            try folder.file(BundleFiles.popularity) { try $0.write(array: model.itemPopularity) }
            try folder.file(BundleFiles.userIDs) { writer in
                for user in 0..<snapshot.userCount { try writer.write(Array((snapshot.userID(user) + "\n").utf8)) }
            }
            try folder.file(BundleFiles.itemIDs) { writer in
                for item in 0..<snapshot.itemCount { try writer.write(Array((snapshot.itemID(item) + "\n").utf8)) }
            }
            try folder.file(BundleFiles.history) { writer in
                try writer.write(array: history.rowStart.map { UInt64($0) })
                try writer.write(array: history.indices)
            }
            if !catalog.isEmpty {
                try folder.file(BundleFiles.catalog) { writer in
                    try CatalogLines.write((0..<snapshot.itemCount).compactMap { catalog[snapshot.itemID($0)] }, to: writer)
                }
            }
            for attachment in attachments { try folder.file(attachment.name, attachment.write) }
        }, manifest: { files in
            let manifest = BundleManifest(
                name: name, modelKind: model.kind, hyperparameters: model.hyperparameters, snapshotHash: snapshot.hash,
                createdAt: Date().epochMillis,
                counts: BundleCounts(users: snapshot.userCount, items: snapshot.itemCount, interactions: history.nonZeroCount),
                dimension: model.dimension, files: files, indexes: attachments.compactMap(\.index), parent: parent, recipe: recipe)
            try manifest.validate()
            return try manifest.canonicalJSON()
        })
    }
}
