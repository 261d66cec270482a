/// Rules every external id (user, item, bundle, experiment) must follow, so ids survive
/// URLs, TSV files and logs unchanged.
public enum Identifier {
    public static let maxUTF8Length = 256

    /// Returns nil when `value` is a valid id, or the reason it is not.
    public static func problem(with value: String) -> String? {
        if value.isEmpty { return "is empty" }
        if value.utf8.count > maxUTF8Length { return "is longer than \(maxUTF8Length) bytes" }
        for scalar in value.unicodeScalars where isControl(scalar) {
            return "contains a control character (U+\(String(scalar.value, radix: 16, uppercase: true)))"
        }
        return nil
    }

    /// General category Cc is exactly U+0000–U+001F and U+007F–U+009F; checking the ranges
    /// avoids a Unicode property lookup per character on the request path.
    @inline(__always)
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    public static func validate(_ value: String, field: String) throws(DuetError) {
        if let problem = problem(with: value) {
            throw .invalidValue(field: field, reason: "'\(value.prefix(40))' \(problem)")
        }
    }
}
