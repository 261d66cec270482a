public import Foundation

/// File names inside a bundle folder.
public enum BundleFiles {
    public static let manifest = "manifest.json"
    public static let userFactors = "user_factors.f32"
    public static let itemFactors = "item_factors.f32"
    public static let popularity = "popularity.f32"
    public static let userIDs = "users.ids"
    public static let itemIDs = "items.ids"
    public static let catalog = "catalog.jsonl"
    /// Each user's training items (CSR: u64 row starts, then u32 item indexes), for filtering.
    public static let history = "history.csr"
}

/// A verified, memory-mapped model bundle. Opening checks the folder's name against the SHA-256
/// of `manifest.json`, then every listed file's size and SHA-256, before anything can be read:
/// a bundle is whole and verified, or it is refused naming the bad file. Never half-loaded.
public final class ModelBundle: @unchecked Sendable {
    public let id: String
    public let folder: URL
    public let manifest: BundleManifest
    public let userFactors: UnsafeBufferPointer<Float>
    public let itemFactors: UnsafeBufferPointer<Float>
    /// One score per item; the fallback ranking.
    public let popularity: UnsafeBufferPointer<Float>
    public let userIDs: [String]
    public let itemIDs: [String]
    public let catalog: [String: CatalogItem]
    public let historyStart: UnsafeBufferPointer<UInt64>
    public let historyItems: UnsafeBufferPointer<UInt32>
    private let userIndex: [String: Int]
    private let itemIndex: [String: Int]
    private let maps: [String: MappedFile]

    /// With `privateCopy`, every file is read into this process's memory and verified there, so what
    /// it serves cannot change under it (see `MappedFile`); Serve opens bundles that way.
    public init(folder: URL, verify: Bool = true, privateCopy: Bool = false) throws {
        self.folder = folder
        let (verified, manifest) = try VerifiedFolder.open(folder, verify: verify, privateCopy: privateCopy, what: "bundle", decode: { data in
            let manifest = try JSONDecoder().decode(BundleManifest.self, from: data)
            try manifest.validate()
            return manifest
        }, files: \.files)
        id = verified.id
        self.manifest = manifest
        let maps = verified.files
        let bundleID = id
        func required(_ name: String) throws -> MappedFile { try verified.required(name) }
        func floats(_ name: String, count: Int) throws -> UnsafeBufferPointer<Float> {
            let file = try required(name)
            guard file.size == count * 4 else {
                throw DuetError.corruptFile(path: "\(bundleID)/\(name)", reason: "\(file.size) bytes, expected \(count * 4) for \(count) floats")
            }
            return file.buffer(of: Float.self, at: 0, count: count)
        }
        let d = manifest.dimension
        let users = manifest.counts.users, items = manifest.counts.items
        userFactors = d > 0 ? try floats(BundleFiles.userFactors, count: users * d) : UnsafeBufferPointer(start: nil, count: 0)
        itemFactors = d > 0 ? try floats(BundleFiles.itemFactors, count: items * d) : UnsafeBufferPointer(start: nil, count: 0)
        popularity = try floats(BundleFiles.popularity, count: items)
        userIDs = try Self.ids(required(BundleFiles.userIDs), expected: users, name: "\(id)/\(BundleFiles.userIDs)")
        itemIDs = try Self.ids(required(BundleFiles.itemIDs), expected: items, name: "\(id)/\(BundleFiles.itemIDs)")
        let history = try required(BundleFiles.history)
        guard history.size >= (users + 1) * 8 else {
            throw DuetError.corruptFile(path: "\(id)/\(BundleFiles.history)", reason: "too short for \(users) users")
        }
        historyStart = history.buffer(of: UInt64.self, at: 0, count: users + 1)
        let historyCount = Int(historyStart[users])
        guard history.size == (users + 1) * 8 + historyCount * 4 else {
            throw DuetError.corruptFile(path: "\(id)/\(BundleFiles.history)", reason: "size does not match its row starts")
        }
        historyItems = history.buffer(of: UInt32.self, at: (users + 1) * 8, count: historyCount)
        if let bad = historyItems.first(where: { Int($0) >= items }) {
            throw DuetError.corruptFile(path: "\(id)/\(BundleFiles.history)", reason: "item index \(bad) out of range")
        }
        catalog = try verified.catalog(BundleFiles.catalog)
        userIndex = Dictionary(userIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        itemIndex = Dictionary(itemIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        self.maps = maps
    }

    /// The catalogue's JSON lines: each read by `CatalogLine` when it has the shape bundles write,
    /// otherwise by JSONDecoder, whose error then names the line.
    static func catalogItems(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [CatalogItem] {
        var items: [CatalogItem] = []
        let decoder = JSONDecoder()
        var lineNumber = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            guard line.contains(where: { $0 != 0x20 && $0 != 0x0D && $0 != 0x09 }) else { continue }
            if let item = CatalogLine.parse(UnsafeRawBufferPointer(rebasing: line)) {
                items.append(item)
                continue
            }
            do {
                items.append(try decoder.decode(CatalogItem.self, from: Data(line)))
            } catch {
                throw DuetError.corruptFile(path: path, reason: "line \(lineNumber) is not a catalogue item (\(DecodingProblem.describe(error)))")
            }
        }
        return items
    }

    /// One id per line (a final newline allowed), exactly `expected` of them.
    public static func ids(_ file: MappedFile, expected: Int, name: String) throws -> [String] {
        var ids = file.bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if ids.last == "" { ids.removeLast() }
        guard ids.count == expected else { throw DuetError.corruptFile(path: name, reason: "\(ids.count) ids, manifest says \(expected)") }
        return ids
    }

    public static func sha256Hex(_ data: Data) -> String { SHA256.hash(data: data).lowercaseHex }

    /// A file the manifest lists (e.g. a similarity index), mapped and already verified.
    public func mappedFile(_ name: String) -> MappedFile? { maps[name] }

    public var dimension: Int { manifest.dimension }
    public var userCount: Int { manifest.counts.users }
    public var itemCount: Int { manifest.counts.items }

    public func userIndex(of id: String) -> Int? { userIndex[id] }
    public func itemIndex(of id: String) -> Int? { itemIndex[id] }

    /// Items the user interacted with in the training data.
    public func history(ofUser user: Int) -> UnsafeBufferPointer<UInt32> {
        UnsafeBufferPointer(rebasing: historyItems[Int(historyStart[user])..<Int(historyStart[user + 1])])
    }

    public func isAvailable(item: Int) -> Bool { catalog[itemIDs[item]]?.available ?? true }
}
