public import DuetCore
public import Foundation

/// The home's item catalogue (`catalog.jsonl`): names and availability gathered from imports into
/// the event log, so snapshots frozen from the log can carry names too.
public struct HomeCatalog: Sendable {
    public let path: URL

    public init(home: DuetHome) { path = home.root.appendingPathComponent("catalog.jsonl") }

    public func load() throws -> [CatalogItem] {
        guard FileManager.default.fileExists(atPath: path.path) else { return [] }
        return try WorldCatalog.read(from: path)
    }

    /// Adds or replaces items by id, rewriting the file atomically.
    public func merge(_ items: [CatalogItem]) throws {
        var byID: [String: CatalogItem] = [:]
        var order: [String] = []
        for item in try load() + items {
            if byID.updateValue(item, forKey: item.id) == nil { order.append(item.id) }
        }
        try SnapshotStore.writeCatalog(order.map { byID[$0]! }, to: path)
    }
}
