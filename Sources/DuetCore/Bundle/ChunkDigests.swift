public import Foundation

/// The SHA-256 of each consecutive `chunkBytes` slice of a file (the last may be shorter), stored
/// raw, 32 bytes each, in a file beside it. The manifest checksums that list, so every chunk can
/// be verified on its own when it is first read, instead of the whole file before a first answer.
public enum ChunkDigests {
    public static let digestBytes = 32
    /// A first search reads a few hundred records, so each first touch hashes little; the list
    /// costs 0.2% of the file.
    public static let defaultChunkBytes = 16 * 1024
    public static let allowedChunkBytes = 4_096...(16 << 20)

    public static func chunkCount(fileBytes: Int, chunkBytes: Int) -> Int { (fileBytes + chunkBytes - 1) / chunkBytes }

    public static func validate(chunkBytes: Int) throws(DuetError) {
        guard allowedChunkBytes.contains(chunkBytes), chunkBytes & (chunkBytes - 1) == 0 else {
            throw .invalidValue(field: "chunkBytes", reason: "\(chunkBytes) must be a power of two in 4 KiB…16 MiB")
        }
    }

    public static func compute(_ bytes: UnsafeRawBufferPointer, chunkBytes: Int) -> [UInt8] {
        var digests: [UInt8] = []
        digests.reserveCapacity(chunkCount(fileBytes: bytes.count, chunkBytes: chunkBytes) * digestBytes)
        var start = 0
        while start < bytes.count {
            let end = min(start + chunkBytes, bytes.count)
            digests.append(contentsOf: SHA256.hash(UnsafeRawBufferPointer(rebasing: bytes[start..<end])))
            start = end
        }
        return digests
    }

    /// Whether `chunk` hashes to the 32 bytes at `expected`.
    public static func matches(_ chunk: UnsafeRawBufferPointer, expected: UnsafeRawPointer) -> Bool {
        var hasher = SHA256()
        hasher.update(bufferPointer: chunk)
        return withUnsafeTemporaryAllocation(byteCount: digestBytes, alignment: 8) { actual in
            hasher.finalize(into: actual.baseAddress!)
            return memcmp(actual.baseAddress!, expected, digestBytes) == 0
        }
    }
}
