public import Foundation

/// A content-addressed folder (a model bundle, a similarity index) opened and checked: the folder's
/// name is the SHA-256 of `manifest.json`, and every file the manifest lists has its size and
/// SHA-256, all verified before any of it can be read. Whole and verified, or refused naming the bad file.
public struct VerifiedFolder: @unchecked Sendable {
    public let id: String
    public let manifestData: Data
    public let files: [String: MappedFile]

    /// Reads and hashes `manifest.json`; `decode` turns it into the manifest, whose file list is then verified.
    /// Files named by `deferred` are only checked for their size: the caller verifies them as it reads them.
    public static func open<Manifest>(_ folder: URL, verify: Bool, privateCopy: Bool, what: String,
                                      decode: (Data) throws -> Manifest, files: (Manifest) -> [String: BundleFile],
                                      deferred: (Manifest) -> Set<String> = { _ in [] }) throws -> (VerifiedFolder, Manifest) {
        let id = folder.lastPathComponent
        let manifestName = "manifest.json"
        guard let manifestData = FileManager.default.contents(atPath: folder.appendingPathComponent(manifestName).path) else {
            throw DuetError.corruptFile(path: "\(id)/\(manifestName)", reason: "\(what) has no readable manifest.json")
        }
        if verify {
            let actual = ModelBundle.sha256Hex(manifestData)
            guard actual == id else { throw DuetError.checksumMismatch(file: "\(id)/\(manifestName)", expected: id, actual: actual) }
        }
        let manifest: Manifest
        do {
            manifest = try decode(manifestData)
        } catch let error as DuetError {
            throw error
        } catch {
            throw DuetError.corruptFile(path: "\(id)/\(manifestName)", reason: "manifest is not valid JSON: \(DecodingProblem.describe(error))")
        }
        var maps: [String: MappedFile] = [:]
        let later = deferred(manifest)
        for (name, entry) in files(manifest).sorted(by: { $0.key < $1.key }) where !later.contains(name) {
            let mapped: MappedFile
            do { mapped = try MappedFile(path: folder.appendingPathComponent(name).path, privateCopy: privateCopy) } catch {
                throw DuetError.corruptFile(path: "\(id)/\(name)", reason: "missing or unreadable (\(error))")
            }
            guard mapped.size == entry.bytes else {
                throw DuetError.corruptFile(path: "\(id)/\(name)", reason: "\(mapped.size) bytes, manifest says \(entry.bytes)")
            }
            if verify {
                let actual = Snapshot.sha256(of: mapped.bytes)
                guard actual == entry.sha256 else { throw DuetError.checksumMismatch(file: "\(id)/\(name)", expected: entry.sha256, actual: actual) }
            }
            maps[name] = mapped
        }
        return (VerifiedFolder(id: id, manifestData: manifestData, files: maps), manifest)
    }

    /// A listed file, or an error naming it.
    public func required(_ name: String) throws(DuetError) -> MappedFile {
        guard let file = files[name] else { throw .corruptFile(path: "\(id)/\(name)", reason: "the manifest does not list it") }
        return file
    }

    /// One id per line, exactly `expected` of them.
    public func ids(_ name: String, expected: Int) throws -> [String] {
        try ModelBundle.ids(required(name), expected: expected, name: "\(id)/\(name)")
    }

    /// The catalogue lines of a listed file, by item id; empty when the file is not listed.
    public func catalog(_ name: String) throws -> [String: CatalogItem] {
        guard let file = files[name] else { return [:] }
        let items = try ModelBundle.catalogItems(file.bytes, path: "\(id)/\(name)")
        var catalog: [String: CatalogItem] = [:]
        catalog.reserveCapacity(items.count)
        for item in items { catalog[item.id] = item }
        return catalog
    }
}
