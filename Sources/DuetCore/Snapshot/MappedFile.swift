import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file in memory, read-only: a map of the file, or a private copy.
///
/// A map loads pages on first touch, so opening is instant whatever the size, but it shows the
/// file as it is now: an in-place edit changes what is read, and a truncation makes the next read
/// fault (SIGBUS). `privateCopy` reads the file once into anonymous memory instead: the process
/// then reads exactly the bytes it verified, whatever happens to the file, at the cost of resident
/// memory equal to the file's size. Serve loads bundles that way.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?

    public init(path: String, privateCopy: Bool = false) throws(DuetError) {
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
        if privateCopy {
            let region = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let region, region != MAP_FAILED else {
                throw .io(path: path, reason: "cannot allocate \(size) bytes: \(String(cString: strerror(errno)))")
            }
            var done = 0
            while done < size {
                let count = read(fd, region + done, size - done)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else {
                    let reason = count == 0 ? "the file shrank to \(done) bytes while being read" : String(cString: strerror(errno))
                    munmap(region, size)
                    throw .io(path: path, reason: reason)
                }
                done += count
            }
            mprotect(region, size, PROT_READ)
            base = UnsafeRawPointer(region)
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
