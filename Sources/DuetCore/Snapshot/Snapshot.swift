import Foundation

/// A frozen, content-hashed set of interactions in compressed sparse row (CSR) form.
/// Training and evaluation read only snapshots, so a result can always be traced to its data.
///
/// File layout (little-endian, sections 8-byte aligned), format version 1:
///
///     0   magic "DUETSNAP"          8   version u32, reserved u32
///     16  users u64   24 items u64   32 nnz u64   40 minTime i64   48 maxTime i64
///     56  offsets of rowStart, item, weight, time, userDictionary, itemDictionary (6 × u64)
///     104 file size u64              112 FNV-1a 64 of bytes 0..<112   120 reserved
///     rowStart  u64 × (users + 1)    row u holds entries rowStart[u] ..< rowStart[u+1]
///     item      u32 × nnz            item index, ascending within a row
///     weight    f32 × nnz            summed weight of the pair's events
///     time      i64 × nnz            latest event time of the pair (ms since epoch)
///     dictionary: u64 × (count + 1) offsets into the UTF-8 bytes that follow; ids sorted by UTF-8 bytes
///
/// The snapshot's hash is the SHA-256 of the whole file, and it names the file.
public final class Snapshot: @unchecked Sendable {
    public static let magic = Array("DUETSNAP".utf8)
    public static let formatVersion: UInt32 = 1
    public static let headerSize = 128
    public static let fileExtension = "dsnap"

    public let file: MappedFile
    public let userCount: Int
    public let itemCount: Int
    public let interactionCount: Int
    public let timeRange: ClosedRange<EpochMillis>?
    public let rowStart: UnsafeBufferPointer<UInt64>
    public let items: UnsafeBufferPointer<UInt32>
    public let weights: UnsafeBufferPointer<Float>
    public let times: UnsafeBufferPointer<EpochMillis>
    private let userDictionary: IDDictionary
    private let itemDictionary: IDDictionary

    /// Opens with a memory map and checks the structure: header, bounds and every index.
    /// `verifyHash` also recomputes the SHA-256 and compares it with the file's name.
    public init(path: String, verifyHash: Bool = false) throws(DuetError) {
        let file = try MappedFile(path: path)
        self.file = file
        let size = file.size
        guard size >= Self.headerSize else {
            throw .corruptFile(path: path, reason: "\(size) bytes is shorter than the \(Self.headerSize)-byte header")
        }
        guard Array(file.bytes[0..<8]) == Self.magic else {
            throw .corruptFile(path: path, reason: "not a Duet snapshot (bad magic)")
        }
        let version = file.load(UInt32.self, at: 8)
        guard version == Self.formatVersion else {
            throw .corruptFile(path: path, reason: "snapshot format \(version) is not supported (expected \(Self.formatVersion))")
        }
        guard file.load(UInt64.self, at: 112) == FNV1a64.hash(UnsafeRawBufferPointer(rebasing: file.bytes[0..<112])) else {
            throw .corruptFile(path: path, reason: "header checksum does not match")
        }
        guard Int(file.load(UInt64.self, at: 104)) == size else {
            throw .corruptFile(path: path, reason: "file is \(size) bytes but the header promises \(file.load(UInt64.self, at: 104)) (truncated?)")
        }
        let users = Int(file.load(UInt64.self, at: 16))
        let itemTotal = Int(file.load(UInt64.self, at: 24))
        let nnz = Int(file.load(UInt64.self, at: 32))
        userCount = users
        itemCount = itemTotal
        interactionCount = nnz
        let minTime = file.load(Int64.self, at: 40)
        let maxTime = file.load(Int64.self, at: 48)
        timeRange = nnz > 0 && minTime <= maxTime ? minTime...maxTime : nil

        func section(_ slot: Int, bytes: Int) throws(DuetError) -> Int {
            let offset = Int(file.load(UInt64.self, at: 56 + 8 * slot))
            guard offset % 8 == 0, offset >= Self.headerSize, bytes >= 0, offset <= size, bytes <= size - offset else {
                throw .corruptFile(path: path, reason: "section \(slot) lies outside the file")
            }
            return offset
        }
        rowStart = file.buffer(of: UInt64.self, at: try section(0, bytes: (users + 1) * 8), count: users + 1)
        items = file.buffer(of: UInt32.self, at: try section(1, bytes: nnz * 4), count: nnz)
        weights = file.buffer(of: Float.self, at: try section(2, bytes: nnz * 4), count: nnz)
        times = file.buffer(of: EpochMillis.self, at: try section(3, bytes: nnz * 8), count: nnz)
        userDictionary = try IDDictionary(file: file, offset: try section(4, bytes: (users + 1) * 8), count: users, name: "user")
        itemDictionary = try IDDictionary(file: file, offset: try section(5, bytes: (itemTotal + 1) * 8), count: itemTotal, name: "item")

        guard rowStart.first == 0, rowStart.last == UInt64(nnz) else {
            throw .corruptFile(path: path, reason: "row offsets do not span the \(nnz) interactions")
        }
        for user in 0..<users where rowStart[user] > rowStart[user + 1] {
            throw .corruptFile(path: path, reason: "row offsets decrease at user \(user)")
        }
        if let bad = items.first(where: { Int($0) >= itemTotal }) {
            throw .corruptFile(path: path, reason: "item index \(bad) is out of range (\(itemTotal) items)")
        }
        if verifyHash {
            let expected = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            let actual = Self.sha256(of: file.bytes)
            guard actual == expected else {
                throw .checksumMismatch(file: path, expected: expected, actual: actual)
            }
        }
    }

    public var hash: String { URL(fileURLWithPath: file.path).deletingPathExtension().lastPathComponent }

    public func userID(_ index: Int) -> String { userDictionary.id(at: index) }
    public func itemID(_ index: Int) -> String { itemDictionary.id(at: index) }
    /// Binary search over the sorted dictionary: no hash table to build at open time.
    public func userIndex(of id: String) -> Int? { userDictionary.index(of: id) }
    public func itemIndex(of id: String) -> Int? { itemDictionary.index(of: id) }

    public func row(_ user: Int) -> Range<Int> { Int(rowStart[user])..<Int(rowStart[user + 1]) }

    public static func sha256(of bytes: UnsafeRawBufferPointer) -> String {
        var hasher = SHA256()
        var offset = 0
        let chunk = 1 << 22
        while offset < bytes.count {
            let end = min(offset + chunk, bytes.count)
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
        }
        return hasher.finalize().lowercaseHex
    }
}

/// Sorted ids stored as offsets plus UTF-8 bytes, read straight from the map.
struct IDDictionary {
    let offsets: UnsafeBufferPointer<UInt64>
    let bytes: UnsafeRawBufferPointer

    init(file: MappedFile, offset: Int, count: Int, name: String) throws(DuetError) {
        offsets = file.buffer(of: UInt64.self, at: offset, count: count + 1)
        let blobStart = offset + (count + 1) * 8
        let blobLength = Int(offsets.last ?? 0)
        guard offsets.first == 0, blobLength >= 0, blobStart + blobLength <= file.size else {
            throw .corruptFile(path: file.path, reason: "\(name) dictionary lies outside the file")
        }
        for index in 0..<count where offsets[index] > offsets[index + 1] {
            throw .corruptFile(path: file.path, reason: "\(name) dictionary offsets decrease at \(index)")
        }
        bytes = UnsafeRawBufferPointer(rebasing: file.bytes[blobStart..<(blobStart + blobLength)])
    }

    var count: Int { offsets.count - 1 }

    func slice(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Int(offsets[index])..<Int(offsets[index + 1])])
    }

    func id(at index: Int) -> String { String(decoding: slice(index), as: UTF8.self) }

    func index(of id: String) -> Int? {
        var key = id
        return key.withUTF8 { target -> Int? in
            var low = 0, high = count
            while low < high {
                let mid = (low + high) / 2
                let candidate = slice(mid)
                if candidate.lexicographicallyPrecedes(UnsafeRawBufferPointer(target)) { low = mid + 1 } else { high = mid }
            }
            guard low < count, slice(low).elementsEqual(UnsafeRawBufferPointer(target)) else { return nil }
            return low
        }
    }
}

/// 64-bit FNV-1a: a cheap header checksum that catches torn or hand-edited headers.
public enum FNV1a64 {
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var value: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01B3
        }
        return value
    }
}
