public import Foundation

/// The columns of a snapshot, already in canonical order: ids sorted by UTF-8 bytes,
/// rows by user index, entries by item index within a row, one entry per (user, item).
public struct SnapshotColumns: Sendable {
    public var userIDs: [String]
    public var itemIDs: [String]
    public var rowStart: [UInt64]
    public var items: [UInt32]
    public var weights: [Float]
    public var times: [EpochMillis]

    public init(userIDs: [String], itemIDs: [String], rowStart: [UInt64], items: [UInt32], weights: [Float], times: [EpochMillis]) {
        self.userIDs = userIDs
        self.itemIDs = itemIDs
        self.rowStart = rowStart
        self.items = items
        self.weights = weights
        self.times = times
    }
}

public enum SnapshotWriter {
    /// Writes `columns` into `folder` as `<sha256>.dsnap` and returns the hash. The same columns
    /// always give the same bytes, so the same data always gives the same hash.
    public static func write(_ columns: SnapshotColumns, into folder: URL) throws -> String {
        let users = columns.userIDs.count
        let itemTotal = columns.itemIDs.count
        let nnz = columns.items.count
        guard columns.rowStart.count == users + 1, columns.weights.count == nnz, columns.times.count == nnz,
              columns.rowStart.last == UInt64(nnz) else {
            throw DuetError.invalidValue(field: "snapshot columns", reason: "column lengths disagree")
        }
        func aligned(_ value: Int) -> Int { (value + 7) / 8 * 8 }
        func dictionaryBytes(_ ids: [String]) -> Int { (ids.count + 1) * 8 + ids.reduce(0) { $0 + $1.utf8.count } }

        var offsets: [Int] = []
        var cursor = Snapshot.headerSize
        for length in [(users + 1) * 8, nnz * 4, nnz * 4, nnz * 8, dictionaryBytes(columns.userIDs), dictionaryBytes(columns.itemIDs)] {
            offsets.append(cursor)
            cursor = aligned(cursor + length)
        }
        let fileSize = cursor
        let minTime = columns.times.min() ?? 0
        let maxTime = columns.times.max() ?? 0

        var header = [UInt8](repeating: 0, count: Snapshot.headerSize)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { header.replaceSubrange(offset..<(offset + $0.count), with: $0) }
        }
        header.replaceSubrange(0..<8, with: Snapshot.magic)
        put(Snapshot.formatVersion, at: 8)
        put(UInt64(users), at: 16)
        put(UInt64(itemTotal), at: 24)
        put(UInt64(nnz), at: 32)
        put(minTime, at: 40)
        put(maxTime, at: 48)
        for (slot, offset) in offsets.enumerated() { put(UInt64(offset), at: 56 + 8 * slot) }
        put(UInt64(fileSize), at: 104)
        put(header.withUnsafeBytes { FNV1a64.hash(UnsafeRawBufferPointer(rebasing: $0[0..<112])) }, at: 112)

        let writer = try AtomicFileWriter(folder: folder)
        do {
            try writer.write(header)
            try writer.write(array: columns.rowStart); try writer.pad(to: 8)
            try writer.write(array: columns.items); try writer.pad(to: 8)
            try writer.write(array: columns.weights); try writer.pad(to: 8)
            try writer.write(array: columns.times); try writer.pad(to: 8)
            for ids in [columns.userIDs, columns.itemIDs] {
                var offset: UInt64 = 0
                var table: [UInt64] = [0]
                table.reserveCapacity(ids.count + 1)
                for id in ids {
                    offset += UInt64(id.utf8.count)
                    table.append(offset)
                }
                try writer.write(array: table)
                for id in ids { try writer.write(Array(id.utf8)) }
                try writer.pad(to: 8)
            }
            precondition(writer.bytesWritten == fileSize, "snapshot layout and writer disagree")
            let hash = writer.sha256Hex
            let destination = folder.appendingPathComponent("\(hash).\(Snapshot.fileExtension)")
            if FileManager.default.fileExists(atPath: destination.path) {
                writer.discard()  // identical content is already frozen under this name
            } else {
                try writer.commit(to: destination)
            }
            return hash
        } catch {
            writer.discard()
            throw error
        }
    }
}
