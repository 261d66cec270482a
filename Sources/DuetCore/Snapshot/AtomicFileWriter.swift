public import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file under a temporary name, hashing as it goes, then fsyncs and renames it into
/// place: readers see the whole file or nothing, and a crash leaves only a temp file behind.
public final class AtomicFileWriter {
    public let temporaryPath: String
    private var descriptor: Int32
    private var hasher = SHA256()
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    public private(set) var bytesWritten = 0

    public init(folder: URL) throws {
        temporaryPath = folder.appendingPathComponent(".tmp-\(UUID().uuidString)").path
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard descriptor >= 0 else {
            throw DuetError.io(path: temporaryPath, reason: "cannot create: \(String(cString: strerror(errno)))")
        }
        buffer.reserveCapacity(bufferLimit)
    }

    deinit {
        if descriptor >= 0 {
            close(descriptor)
            unlink(temporaryPath)
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bufferPointer: bytes)
        bytesWritten += bytes.count
        if buffer.count + bytes.count > bufferLimit { try flush() }
        if bytes.count >= bufferLimit {
            try writeFully(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public func write<T>(array: [T]) throws {
        try array.withUnsafeBytes { bytes in try write(bytes) }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in try write(raw) }
    }

    public func write<T: FixedWidthInteger>(integer value: T) throws {
        try withUnsafeBytes(of: value.littleEndian) { raw in try write(raw) }
    }

    /// Zero bytes up to the next multiple of `alignment`.
    public func pad(to alignment: Int) throws {
        let remainder = bytesWritten % alignment
        if remainder != 0 { try write([UInt8](repeating: 0, count: alignment - remainder)) }
    }

    public var sha256Hex: String { hasher.finalize().lowercaseHex }

    /// Flushes, fsyncs and renames to `destination`, then fsyncs the folder so the rename is durable.
    public func commit(to destination: URL) throws {
        try flush()
        guard fsync(descriptor) == 0 else { throw DuetError.io(path: temporaryPath, reason: "fsync failed: \(String(cString: strerror(errno)))") }
        close(descriptor)
        descriptor = -1
        guard rename(temporaryPath, destination.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw DuetError.io(path: destination.path, reason: "cannot move into place: \(reason)")
        }
        Self.syncFolder(destination.deletingLastPathComponent())
    }

    /// Drops the temporary file without publishing it.
    public func discard() {
        if descriptor >= 0 {
            close(descriptor)
            descriptor = -1
        }
        unlink(temporaryPath)
    }

    public static func syncFolder(_ folder: URL) {
        let fd = open(folder.path, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { raw in try writeFully(raw) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw DuetError.io(path: temporaryPath, reason: "write failed: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}
