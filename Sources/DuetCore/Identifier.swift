/// Rules every external id (user, item, bundle, experiment) must follow, so ids survive
/// URLs, TSV files and logs unchanged.
public enum Identifier {
    /// Counted in Unicode scalars, as JSON Schema's `maxLength` counts, so /openapi.json can state it exactly.
    public static let maxLength = 256

    /// Returns nil when `value` is a valid id, or the reason it is not.
    public static func problem(with value: String) -> String? {
        if value.isEmpty { return "is empty" }
        // A UTF-8 byte count within the limit is a scalar count within it; only longer ids are counted.
        if value.utf8.count > maxLength, value.unicodeScalars.count > maxLength { return "is longer than \(maxLength) characters" }
        // Byte by byte first: this runs for every id Serve logs. In UTF-8 a control character is a
        // byte below 0x20, 0x7F, or 0xC2 followed by 0x80–0x9F (0xC2 is never a continuation byte).
        let clean = value.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            var previous: UInt8 = 0
            for byte in bytes {
                if byte < 0x20 || byte == 0x7F || (previous == 0xC2 && byte <= 0x9F) { return false }
                previous = byte
            }
            return true
        }
        if clean == true { return nil }
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

    /// Most characters of an id that names a file or folder (experiments, bundles, splits).
    public static let fileSafeMaxLength = 128

    /// Returns nil when `value` may name a file or folder, or the reason it may not. The alphabet is
    /// ASCII letters, digits, '.', '_' and '-'; the first character is a letter or digit, and ".."
    /// never appears. So no '/', '\\', leading '.', control character or traversal can reach a path.
    public static func fileSafeProblem(with value: String) -> String? {
        if value.isEmpty { return "is empty" }
        if value.utf8.count > fileSafeMaxLength { return "is longer than \(fileSafeMaxLength) characters" }
        for byte in value.utf8 where !(isLetterOrDigit(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")) {
            return "may hold only ASCII letters, digits, '.', '_' and '-'"
        }
        if !isLetterOrDigit(value.utf8.first!) { return "must start with a letter or digit" }
        if value.contains("..") { return "must not contain '..'" }
        return nil
    }

    private static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    public static func validateFileSafe(_ value: String, field: String) throws(DuetError) {
        if let problem = fileSafeProblem(with: value) {
            throw .invalidValue(field: field, reason: "'\(value.prefix(40))' \(problem)")
        }
    }

    public static func validate(_ value: String, field: String) throws(DuetError) {
        if let problem = problem(with: value) {
            throw .invalidValue(field: field, reason: "'\(value.prefix(40))' \(problem)")
        }
    }
}
