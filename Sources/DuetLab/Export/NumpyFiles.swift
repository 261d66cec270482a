public import DuetCore
public import Foundation

/// NumPy's `.npy` format, version 1.0: a magic string, a Python-literal header padded to 64 bytes,
/// then the raw little-endian array. Headers are written before the data, so arrays stream.
public enum NumpyFormat {
    public static func header(descr: String, shape: [Int]) -> [UInt8] {
        let dimensions = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dictionary = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dimensions), }"
        let unpadded = 10 + dictionary.utf8.count + 1
        dictionary += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = UInt16(dictionary.utf8.count)
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(dictionary.utf8)
    }

    /// A one-array `.npy` file, written atomically: the rows stream through `produce`.
    public static func write(to destination: URL, descr: String, shape: [Int],
                             _ produce: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        try atomically(destination) { writer in
            try writer.write(header(descr: descr, shape: shape))
            let expected = writer.bytesWritten + shape.reduce(1, *) * elementSize(descr)
            try produce { try writer.write($0) }
            guard writer.bytesWritten == expected else {
                throw DuetError.io(path: destination.path, reason: "wrote \(writer.bytesWritten) bytes where the header promises \(expected)")
            }
        }
    }

    /// Writes `destination` whole through `body`, or not at all: any error discards the temporary file.
    static func atomically(_ destination: URL, _ body: (AtomicFileWriter) throws -> Void) throws {
        let writer = try AtomicFileWriter(folder: destination.deletingLastPathComponent())
        do {
            try body(writer)
            try writer.commit(to: destination)
        } catch {
            writer.discard()
            throw error
        }
    }

    static func elementSize(_ descr: String) -> Int { Int(descr.dropFirst(2)) ?? 1 }
}

/// An `.npz` archive (an uncompressed ZIP of `.npy` members), the container `numpy.load` and
/// `scipy.sparse.load_npz` read. Each member's CRC-32 follows its data in a data descriptor, so
/// members stream without seeking back; the file appears atomically on `commit`.
public final class NumpyArchive {
    struct Member {
        var name: String
        var offset: Int
        var size: Int
        var crc: UInt32
    }

    private let destination: URL
    private let writer: AtomicFileWriter
    private var members: [Member] = []
    private var open: (name: String, offset: Int, start: Int, expected: Int, crc: UInt32)?

    public init(destination: URL) throws {
        self.destination = destination
        writer = try AtomicFileWriter(folder: destination.deletingLastPathComponent())
    }

    /// Starts member `name.npy`; write exactly `shape`'s elements of `descr` before the next call.
    public func beginArray(_ name: String, descr: String, shape: [Int]) throws {
        precondition(open == nil, "finish the previous array first")
        let fileName = Array("\(name).npy".utf8)
        let offset = writer.bytesWritten
        // Local header: version 2.0, flag bit 3 (sizes and CRC follow the data), stored, 1980-01-01.
        try writer.write(integer: UInt32(0x0403_4B50))
        for field: UInt16 in [20, 0x0008, 0, 0, 0x21] { try writer.write(integer: field) }
        for _ in 0..<3 { try writer.write(integer: UInt32(0)) }
        try writer.write(integer: UInt16(fileName.count))
        try writer.write(integer: UInt16(0))
        try writer.write(fileName)
        let start = writer.bytesWritten
        let header = NumpyFormat.header(descr: descr, shape: shape)
        open = (name: "\(name).npy", offset: offset, start: start, expected: header.count + shape.reduce(1, *) * NumpyFormat.elementSize(descr), crc: 0)
        try write(header)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var member = open else { preconditionFailure("no array is open") }
        member.crc = CRC32.update(member.crc, bytes)
        open = member
        try writer.write(bytes)
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    public func write<T>(array: [T]) throws { try array.withUnsafeBytes { try write($0) } }

    public func endArray() throws {
        guard let member = open else { preconditionFailure("no array is open") }
        let size = writer.bytesWritten - member.start
        guard size == member.expected else {
            throw DuetError.io(path: destination.path, reason: "\(member.name): wrote \(size) bytes where its header promises \(member.expected)")
        }
        try writer.write(integer: UInt32(0x0807_4B50))
        try writer.write(integer: member.crc)
        try writer.write(integer: UInt32(try Self.fits(size)))
        try writer.write(integer: UInt32(try Self.fits(size)))
        members.append(Member(name: member.name, offset: member.offset, size: size, crc: member.crc))
        open = nil
    }

    /// Writes the central directory and moves the archive into place.
    public func commit() throws {
        precondition(open == nil, "finish the open array first")
        let directoryStart = writer.bytesWritten
        for member in members {
            let name = Array(member.name.utf8)
            try writer.write(integer: UInt32(0x0201_4B50))
            for field: UInt16 in [20, 20, 0x0008, 0, 0, 0x21] { try writer.write(integer: field) }
            try writer.write(integer: member.crc)
            try writer.write(integer: UInt32(member.size))
            try writer.write(integer: UInt32(member.size))
            for field: UInt16 in [UInt16(name.count), 0, 0, 0, 0] { try writer.write(integer: field) }
            try writer.write(integer: UInt32(0))
            try writer.write(integer: UInt32(try Self.fits(member.offset)))
            try writer.write(name)
        }
        let directorySize = writer.bytesWritten - directoryStart
        try writer.write(integer: UInt32(0x0605_4B50))
        for field: UInt16 in [0, 0, UInt16(members.count), UInt16(members.count)] { try writer.write(integer: field) }
        try writer.write(integer: UInt32(try Self.fits(directorySize)))
        try writer.write(integer: UInt32(try Self.fits(directoryStart)))
        try writer.write(integer: UInt16(0))
        try writer.commit(to: destination)
    }

    /// Plain ZIP offsets and sizes are 32-bit; past that an archive would need ZIP64.
    static func fits(_ value: Int) throws -> Int {
        guard value <= Int(UInt32.max) else {
            throw DuetError.refused("the archive passes 4 GiB, which needs ZIP64; export a narrower time range or part")
        }
        return value
    }

    /// A sparse matrix in the layout `scipy.sparse.save_npz` writes and `load_npz` reads as CSR.
    /// `entries` is called twice and must give the same entries, row by row, each time.
    public static func writeCSR(to destination: URL, rows: Int, columns: Int, nonZeros: Int,
                                indptr: [Int64], entries: (_ emit: (_ column: Int32, _ value: Float) throws -> Void) throws -> Void) throws {
        precondition(indptr.count == rows + 1)
        let archive = try NumpyArchive(destination: destination)
        // Two passes over the entries, one per member, so memory stays one block whatever the size.
        func stream(_ name: String, descr: String, columns: Bool) throws {
            try archive.beginArray(name, descr: descr, shape: [nonZeros])
            var indices: [Int32] = [], values: [Float] = []
            indices.reserveCapacity(columns ? 1 << 16 : 0)
            values.reserveCapacity(columns ? 0 : 1 << 16)
            try entries { column, value in
                if columns { indices.append(column) } else { values.append(value) }
                if indices.count + values.count == 1 << 16 {
                    try columns ? archive.write(array: indices) : archive.write(array: values)
                    indices.removeAll(keepingCapacity: true)
                    values.removeAll(keepingCapacity: true)
                }
            }
            try columns ? archive.write(array: indices) : archive.write(array: values)
            try archive.endArray()
        }
        try stream("indices", descr: "<i4", columns: true)
        try archive.beginArray("indptr", descr: "<i8", shape: [rows + 1])
        try archive.write(array: indptr)
        try archive.endArray()
        try archive.beginArray("format", descr: "|S3", shape: [])
        try archive.write(Array("csr".utf8))
        try archive.endArray()
        try archive.beginArray("shape", descr: "<i8", shape: [2])
        try archive.write(array: [Int64(rows), Int64(columns)])
        try archive.endArray()
        try stream("data", descr: "<f4", columns: false)
        try archive.commit()
    }
}

/// CRC-32 (IEEE 802.3, reflected), as ZIP stores it.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        table.withUnsafeBufferPointer { table in
            for byte in bytes { c = table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        }
        return ~c
    }
}
