import CDuetIntrinsics
public import DuetCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A file read into this process's memory one chunk at a time, each chunk checked against its
/// SHA-256 before any of it is used: what a private copy guarantees (the bytes read are the bytes
/// verified, whatever later happens to the file) without reading the whole file before the first
/// answer. Memory is reserved for the whole file but only touched chunks become resident.
///
/// `ensure` is the read barrier: true once every chunk under a range is ready. A chunk that fails
/// its checksum (or cannot be read: a file truncated after it was opened) is never used, and the
/// first failure is kept so the owner can withdraw what it serves.
public final class VerifiedPages: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let chunkBytes: Int
    public let chunkCount: Int
    private let shift: Int
    private let digests: MappedFile
    private let descriptor: Int32
    private let region: UnsafeMutableRawPointer
    private let states: UnsafeMutablePointer<UInt8>
    private let readyChunks = Atomic<Int>(0)
    private let failed = Atomic<Bool>(false)
    private let firstFailure = Mutex<DuetError?>(nil)
    private let stopping = Atomic<Bool>(false)

    private static let absent: UInt8 = 0, loading: UInt8 = 1, ready: UInt8 = 2, bad: UInt8 = 3

    /// `digests` holds the 32-byte SHA-256 of each chunk (already verified against the manifest);
    /// `size` is what the manifest says the file holds.
    public init(path: String, size: Int, chunkBytes: Int, digests: MappedFile) throws(DuetError) {
        try ChunkDigests.validate(chunkBytes: chunkBytes)
        let chunkCount = ChunkDigests.chunkCount(fileBytes: size, chunkBytes: chunkBytes)
        guard size > 0, digests.size == chunkCount * ChunkDigests.digestBytes else {
            throw .corruptFile(path: digests.path, reason: "\(digests.size) bytes of chunk digests for \(chunkCount) chunks of \(path)")
        }
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            if errno == ENOENT { throw .fileNotFound(path: path) }
            throw .io(path: path, reason: String(cString: strerror(errno)))
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0, Int(info.st_size) == size else {
            let actual = Int(info.st_size)
            close(descriptor)
            throw .corruptFile(path: path, reason: "\(actual) bytes, manifest says \(size)")
        }
        // Reserved, not committed: pages become resident only as chunks are read in.
        guard let region = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              region != MAP_FAILED else {
            close(descriptor)
            throw .io(path: path, reason: "cannot reserve \(size) bytes: \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.size = size
        self.chunkBytes = chunkBytes
        self.chunkCount = chunkCount
        shift = chunkBytes.trailingZeroBitCount
        self.digests = digests
        self.descriptor = descriptor
        self.region = region
        states = .allocate(capacity: chunkCount)
        states.initialize(repeating: Self.absent, count: chunkCount)
    }

    deinit {
        close(descriptor)
        munmap(region, size)
        states.deallocate()
    }

    /// The whole file's address range; only ranges `ensure` accepted may be read.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: region, count: size) }

    /// Chunks read and verified so far.
    public var verifiedChunks: Int { readyChunks.load(ordering: .relaxed) }

    public var isComplete: Bool { verifiedChunks == chunkCount }

    /// The first chunk that failed, naming it; nil while every chunk read so far was good.
    public var failure: DuetError? {
        guard failed.load(ordering: .acquiring) else { return nil }
        return firstFailure.withLock { $0 }
    }

    /// Reads and verifies the chunks under `offset..<offset + count` that are not in yet.
    @inline(__always) public func ensure(_ offset: Int, _ count: Int) -> Bool {
        var chunk = offset >> shift
        let last = (offset + count - 1) >> shift
        while chunk <= last {
            if duet_load_acquire_u8(states + chunk) != Self.ready, !load(chunk) { return false }
            chunk += 1
        }
        return true
    }

    /// Whether every chunk under the range is already in and verified (reads nothing).
    public func isReady(_ offset: Int, _ count: Int) -> Bool {
        (offset >> shift...(offset + count - 1) >> shift).allSatisfy { duet_load_acquire_u8(states + $0) == Self.ready }
    }

    /// `ensure`, throwing the failure.
    public func require(_ offset: Int, _ count: Int) throws(DuetError) {
        guard count > 0 else { return }
        guard offset >= 0, offset + count <= size else {
            throw .corruptFile(path: path, reason: "bytes \(offset)..<\(offset + count) lie outside the file")
        }
        guard ensure(offset, count) else { throw failure ?? .corruptFile(path: path, reason: "a chunk failed verification") }
    }

    /// Reads in every chunk not yet read, in order; stops at the first failure or when asked to.
    /// Returns whether the whole file is now verified.
    @discardableResult
    public func verifyRemaining() -> Bool {
        for chunk in 0..<chunkCount {
            if stopping.load(ordering: .relaxed) { return false }
            if duet_load_acquire_u8(states + chunk) != Self.ready, !load(chunk) { return false }
        }
        return true
    }

    /// Ends a `verifyRemaining` running elsewhere (its owner is going away).
    public func stop() { stopping.store(true, ordering: .relaxed) }

    @inline(never) private func load(_ chunk: Int) -> Bool {
        while true {
            switch duet_load_acquire_u8(states + chunk) {
            case Self.ready: return true
            case Self.bad: return false
            case Self.loading: sched_yield()  // another thread is reading it in: a few µs
            default:
                guard duet_compare_exchange_u8(states + chunk, Self.absent, Self.loading) != 0 else { continue }
                let good = fill(chunk)
                duet_store_release_u8(states + chunk, good ? Self.ready : Self.bad)
                if good { readyChunks.add(1, ordering: .relaxed) }
                return good
            }
        }
    }

    private func fill(_ chunk: Int) -> Bool {
        let start = chunk << shift
        let length = min(chunkBytes, size - start)
        var done = 0
        while done < length {
            let count = pread(descriptor, region + start + done, length - done, off_t(start + done))
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                let reason = count == 0 ? "the file ends at byte \(start + done), before chunk \(chunk) does (truncated after it was opened?)"
                                        : "chunk \(chunk) cannot be read: \(String(cString: strerror(errno)))"
                record(.corruptFile(path: path, reason: reason))
                return false
            }
            done += count
        }
        let expected = digests.bytes.baseAddress! + chunk * ChunkDigests.digestBytes
        guard ChunkDigests.matches(UnsafeRawBufferPointer(start: region + start, count: length), expected: expected) else {
            record(.checksumMismatch(file: "\(path) chunk \(chunk) (bytes \(start)..<\(start + length))", expected: Self.hex(expected),
                                     actual: Self.hex(ChunkDigests.compute(UnsafeRawBufferPointer(start: region + start, count: length),
                                                                           chunkBytes: length))))
            return false
        }
        return true
    }

    private func record(_ error: DuetError) {
        firstFailure.withLock { if $0 == nil { $0 = error } }
        failed.store(true, ordering: .releasing)
    }

    private static func hex(_ bytes: UnsafeRawPointer) -> String {
        UnsafeRawBufferPointer(start: bytes, count: ChunkDigests.digestBytes).lowercaseHex
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0.baseAddress!) } }
}
