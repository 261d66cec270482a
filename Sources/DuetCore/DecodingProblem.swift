import Foundation

/// Turns a DecodingError into one line a user can act on: which field, and what is wrong.
public enum DecodingProblem {
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, context):
            return "missing field '\(path(context.codingPath + [key]))'"
        case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
            return "field '\(path(context.codingPath))' has the wrong type"
        case let DecodingError.dataCorrupted(context):
            let location = path(context.codingPath)
            let detail = context.underlyingError.map { "\($0)" } ?? context.debugDescription
            return location.isEmpty ? "not valid JSON: \(detail)" : "\(location): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
    }
}
