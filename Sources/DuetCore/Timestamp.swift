public import Foundation

/// Time in the contracts is milliseconds since the Unix epoch: exact, cheap to store and sort.
public typealias EpochMillis = Int64

extension Date {
    /// Clamped to what `EpochMillis` holds, so no date traps.
    public var epochMillis: EpochMillis {
        let millis = (timeIntervalSince1970 * 1000).rounded()
        guard millis.isFinite else { return millis > 0 ? .max : .min }
        return millis >= 9.2e18 ? .max : millis <= -9.2e18 ? .min : EpochMillis(millis)
    }
    public init(epochMillis: EpochMillis) { self.init(timeIntervalSince1970: Double(epochMillis) / 1000) }
}

/// Parses the time forms importers meet: epoch seconds, epoch milliseconds (13+ digits) and ISO 8601.
/// Every conversion is checked: a time outside `validRange` is nil, never a trap.
public enum TimestampParser {
    /// 1970-01-01 to the end of year 9999, in milliseconds: what ISO 8601 can spell.
    public static let validRange: ClosedRange<EpochMillis> = 0...253_402_300_799_999

    public static func epochMillis(_ text: Substring) -> EpochMillis? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let integer = Int64(trimmed) {
            // 13 or more digits can only be milliseconds for any date after 1973.
            if trimmed.count >= 13 { return validRange.contains(integer) ? integer : nil }
            let (millis, overflow) = integer.multipliedReportingOverflow(by: 1000)
            return !overflow && validRange.contains(millis) ? millis : nil
        }
        // Decimal only: Double("0x10") would read hexadecimal, and "nan" or "inf" are no times.
        if trimmed.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == 0x2E || $0 == 0x2B || $0 == 0x2D || $0 == 0x65 || $0 == 0x45 }),
           let seconds = Double(trimmed) {
            return epochMillis(seconds: seconds)
        }
        return iso8601(trimmed)
    }

    /// Epoch seconds (fractions allowed) to milliseconds, or nil outside `validRange`.
    public static func epochMillis(seconds: Double) -> EpochMillis? {
        checked((seconds * 1000).rounded())
    }

    /// A JSON number: milliseconds from 1e12 up (any date after 2001 in ms), seconds below.
    public static func epochMillis(number: Double) -> EpochMillis? {
        number >= 1e12 ? checked(number.rounded()) : epochMillis(seconds: number)
    }

    static func checked(_ millis: Double) -> EpochMillis? {
        guard millis.isFinite, millis >= Double(validRange.lowerBound), millis <= Double(validRange.upperBound) else { return nil }
        return EpochMillis(millis)
    }

    /// ISO 8601 date-times, checked field by field: Foundation's parser rolls "02-30" into March and
    /// hour 25 into the next day, and reads year 10000; those are refused here.
    public static func iso8601(_ text: String) -> EpochMillis? {
        guard hasValidFields(text) else { return nil }
        // Foundation refuses offsets past ±18:00 that RFC 3339 allows (up to ±23:59): the offset is
        // applied here and the rest parsed as UTC.
        var utcText = text
        var offsetMillis: EpochMillis = 0
        let tail = Array(text.utf8.suffix(6))
        if text.utf8.count > 19, tail.count == 6, tail[0] == UInt8(ascii: "+") || tail[0] == UInt8(ascii: "-"), tail[3] == UInt8(ascii: ":") {
            let digits = [tail[1], tail[2], tail[4], tail[5]].map { Int($0) - Int(UInt8(ascii: "0")) }
            guard digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
            let hours = digits[0] * 10 + digits[1], minutes = digits[2] * 10 + digits[3]
            guard hours <= 23, minutes <= 59 else { return nil }
            offsetMillis = EpochMillis((hours * 60 + minutes) * 60_000) * (tail[0] == UInt8(ascii: "+") ? 1 : -1)
            utcText = String(text.dropLast(6)) + "Z"
        }
        let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        let date = (try? withFraction.parse(utcText)) ?? (try? Date.ISO8601FormatStyle().parse(utcText))
        guard let local = date?.epochMillis else { return nil }
        let millis = local - offsetMillis
        guard validRange.contains(millis) else { return nil }
        return millis
    }

    /// YYYY-MM-DDTHH:MM:SS with every field in its calendar range (a leap second allowed).
    static func hasValidFields(_ text: String) -> Bool {
        let bytes = Array(text.utf8.prefix(19))
        guard bytes.count == 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), hour <= 23, minute <= 59, second <= 60 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return (1...days).contains(day)
    }

    public static func iso8601String(_ millis: EpochMillis) -> String {
        Date(epochMillis: millis).formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
