import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Pages load on first touch, so opening is instant
/// whatever the size; the map lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?

    public init(path: String) throws(DuetError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw .fileNotFound(path: path) }
            throw .io(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(path: path, reason: String(cString: strerror(errno))) }
        size = Int(info.st_size)
        if size == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw .io(path: path, reason: "cannot memory-map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Typed view of `count` elements at `offset`; the caller has checked bounds and alignment.
    public func buffer<T>(of type: T.Type, at offset: Int, count: Int) -> UnsafeBufferPointer<T> {
        guard let base, count > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: (base + offset).assumingMemoryBound(to: T.self), count: count)
    }

    public func load<T>(_ type: T.Type, at offset: Int) -> T {
        bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
    }
}
