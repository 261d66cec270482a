public import Foundation

/// Errors a user can act on: each names what was wrong and where.
public enum DuetError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    /// A value failed validation: `field` names it, `reason` says what is wrong.
    case invalidValue(field: String, reason: String)
    /// A row of an input file could not be read.
    case malformedRow(file: String, line: Int, reason: String)
    case fileNotFound(path: String)
    case emptyInput(path: String, reason: String)
    /// A stored file does not match what its manifest or header promises.
    case corruptFile(path: String, reason: String)
    case checksumMismatch(file: String, expected: String, actual: String)
    case notFound(kind: String, id: String)
    case conflict(String)
    case refused(String)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidValue(field, reason):
            return "invalid \(field): \(reason)"
        case let .malformedRow(file, line, reason):
            return "\(file):\(line): \(reason)"
        case let .fileNotFound(path):
            return "no such file: \(path)"
        case let .emptyInput(path, reason):
            return "\(path): \(reason)"
        case let .corruptFile(path, reason):
            return "\(path) is corrupt: \(reason)"
        case let .checksumMismatch(file, expected, actual):
            return "checksum mismatch in \(file): expected sha256 \(expected), found \(actual)"
        case let .notFound(kind, id):
            return "no \(kind) named '\(id)'"
        case let .conflict(message), let .refused(message):
            return message
        case let .io(path, reason):
            return "\(path): \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
