import DuetCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Streams a text file line by line through a fixed buffer, so memory does not grow with the file.
/// Lines are handed out as byte slices without the line ending (`\n` or `\r\n`).
public struct LineReader {
    public let path: String
    public var chunkSize = 1 << 22

    public init(path: String) { self.path = path }

    /// Calls `body(line, lineNumber)` for every line, numbered from 1. Returns the bytes read.
    @discardableResult
    public func forEachLine(_ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void) throws -> Int {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { throw DuetError.fileNotFound(path: path) }
        if isFolder.boolValue { throw DuetError.io(path: path, reason: "is a folder, expected a file") }
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DuetError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        var carry = 0          // bytes of an unfinished line kept at the buffer's start
        var lineNumber = 0
        var total = 0
        while true {
            if carry == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
            let readCount = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + carry, raw.count - carry)
            }
            if readCount < 0 {
                if errno == EINTR { continue }
                throw DuetError.io(path: path, reason: "read failed: \(String(cString: strerror(errno)))")
            }
            total += readCount
            let filled = carry + readCount
            let atEnd = readCount == 0
            var consumed = 0
            try buffer.withUnsafeBufferPointer { bytes in
                var start = 0
                while start < filled {
                    let remaining = filled - start
                    guard let found = memchr(bytes.baseAddress! + start, 0x0A, remaining) else {
                        if atEnd {
                            lineNumber += 1
                            try body(Self.trimCR(UnsafeBufferPointer(rebasing: bytes[start..<filled])), lineNumber)
                            start = filled
                        }
                        break
                    }
                    let end = bytes.baseAddress!.distance(to: found.assumingMemoryBound(to: UInt8.self))
                    lineNumber += 1
                    try body(Self.trimCR(UnsafeBufferPointer(rebasing: bytes[start..<end])), lineNumber)
                    start = end + 1
                }
                consumed = start
            }
            if atEnd { return total }
            carry = filled - consumed
            if carry > 0, consumed > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + consumed, carry)
                }
            }
        }
    }

    private static func trimCR(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        if let last = line.last, last == 0x0D { return UnsafeBufferPointer(rebasing: line.dropLast()) }
        return line
    }
}

/// Splits a line into fields on a delimiter of one or more bytes (e.g. tab, comma, `::`).
/// Fields in double quotes may hold the delimiter, and `""` stands for a quote, as in RFC 4180.
public struct FieldSplitter {
    public let delimiter: [UInt8]
    /// Tab-separated files usually carry quotes as plain text, so quoting is opt-in.
    public let quoting: Bool

    public init(delimiter: String, quoting: Bool) {
        self.delimiter = Array(delimiter.utf8)
        self.quoting = quoting
    }

    public func split(_ line: UnsafeBufferPointer<UInt8>, into fields: inout [String]) throws(FieldError) {
        fields.removeAll(keepingCapacity: true)
        if line.isEmpty { return }
        if delimiter.count == 1, !quoting || !line.contains(0x22) {
            var start = 0
            let separator = delimiter[0]
            for index in 0..<line.count where line[index] == separator {
                fields.append(String(decoding: UnsafeBufferPointer(rebasing: line[start..<index]), as: UTF8.self))
                start = index + 1
            }
            fields.append(String(decoding: UnsafeBufferPointer(rebasing: line[start..<line.count]), as: UTF8.self))
            return
        }
        var current: [UInt8] = []
        var index = 0
        var quoted = false
        var fieldStart = true
        while index < line.count {
            let byte = line[index]
            if quoted {
                if byte == 0x22 {
                    if index + 1 < line.count, line[index + 1] == 0x22 {
                        current.append(0x22)
                        index += 2
                        continue
                    }
                    quoted = false
                } else {
                    current.append(byte)
                }
                index += 1
                continue
            }
            if quoting, byte == 0x22, fieldStart {
                quoted = true
                fieldStart = false
                index += 1
                continue
            }
            if matchesDelimiter(line, at: index) {
                fields.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
                index += delimiter.count
                fieldStart = true
                continue
            }
            current.append(byte)
            fieldStart = false
            index += 1
        }
        if quoted { throw FieldError(reason: "a quoted field is not closed") }
        fields.append(String(decoding: current, as: UTF8.self))
    }

    private func matchesDelimiter(_ line: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        guard index + delimiter.count <= line.count else { return false }
        for offset in 0..<delimiter.count where line[index + offset] != delimiter[offset] { return false }
        return true
    }
}

public struct FieldError: Error {
    public let reason: String
}
