public import Foundation

/// Time in the contracts is milliseconds since the Unix epoch: exact, cheap to store and sort.
public typealias EpochMillis = Int64

extension Date {
    public var epochMillis: EpochMillis { EpochMillis((timeIntervalSince1970 * 1000).rounded()) }
    public init(epochMillis: EpochMillis) { self.init(timeIntervalSince1970: Double(epochMillis) / 1000) }
}

/// Parses the time forms importers meet: epoch seconds, epoch milliseconds (13+ digits) and ISO 8601.
public enum TimestampParser {
    public static func epochMillis(_ text: Substring) -> EpochMillis? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let integer = Int64(trimmed) {
            // 13 or more digits can only be milliseconds for any date after 1973.
            return trimmed.count >= 13 ? integer : integer * 1000
        }
        if let seconds = Double(trimmed), seconds.isFinite {
            return EpochMillis((seconds * 1000).rounded())
        }
        return iso8601(trimmed)
    }

    public static func iso8601(_ text: String) -> EpochMillis? {
        let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        if let date = try? withFraction.parse(text) { return date.epochMillis }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date.epochMillis }
        return nil
    }

    public static func iso8601String(_ millis: EpochMillis) -> String {
        Date(epochMillis: millis).formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
