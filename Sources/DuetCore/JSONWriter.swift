/// A minimal JSON writer for the hot paths (recommendation responses, exposure rows), where
/// Foundation's JSONEncoder costs more than the ranking itself. Output is standard JSON (RFC 8259).
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// One bit per open container, innermost lowest: does its next member need a comma? A bit
    /// stack rather than an array keeps copy-on-write checks out of every value written.
    private var commaBits: UInt64 = 0
    private var depth = 0
    public static let maxDepth = 63

    public init(capacity: Int = 1_024) { bytes.reserveCapacity(capacity) }

    private mutating func separator() {
        if commaBits & 1 != 0 { bytes.append(UInt8(ascii: ",")) }
        commaBits |= 1
    }

    private mutating func open(_ bracket: Character) {
        separator()
        bytes.append(bracket.asciiValue!)
        precondition(depth < Self.maxDepth, "JSONWriter nests at most \(Self.maxDepth) containers")
        depth += 1
        commaBits <<= 1
    }

    private mutating func close(_ bracket: Character) {
        depth -= 1
        commaBits >>= 1
        bytes.append(bracket.asciiValue!)
    }

    public mutating func beginObject() { open("{") }
    public mutating func endObject() { close("}") }
    public mutating func beginArray() { open("[") }
    public mutating func endArray() { close("]") }

    /// Starts a member of the current object; the next value written is its value.
    public mutating func key(_ name: String) {
        separator()
        appendString(name)
        bytes.append(UInt8(ascii: ":"))
        commaBits &= ~1
        pendingMember = true
    }

    private var pendingMember = false

    private mutating func valueSeparator() {
        if pendingMember {
            pendingMember = false
            commaBits |= 1
        } else {
            separator()
        }
    }

    public mutating func string(_ value: String) { valueSeparator(); appendString(value) }
    public mutating func int(_ value: Int) { valueSeparator(); bytes.append(contentsOf: String(value).utf8) }
    public mutating func null() { valueSeparator(); bytes.append(contentsOf: "null".utf8) }

    /// Finite numbers in their shortest round-trip form; JSON has no NaN or infinity, so those are null.
    public mutating func number(_ value: Float) {
        valueSeparator()
        rawNumber(value)
    }

    public mutating func optionalString(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    /// Starts the next value with pre-rendered bytes, e.g. `{"id":"t1","score":`, which the caller
    /// completes with `rawNumber` and `raw` so that together they form one valid JSON value.
    public mutating func rawValue(_ fragment: UnsafeBufferPointer<UInt8>) {
        valueSeparator()
        bytes.append(contentsOf: fragment)
    }

    /// Continues a value begun with `rawValue`.
    public mutating func raw(_ fragment: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: fragment) }

    /// A number inside a value begun with `rawValue` (no separator).
    public mutating func rawNumber(_ value: Float) {
        if value.isFinite { bytes.append(contentsOf: value.description.utf8) } else { bytes.append(contentsOf: "null".utf8) }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private mutating func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            // Most ids and titles need no escaping: copy them whole.
            if !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
                bytes.append(contentsOf: utf8)
            } else {
                appendEscaped(utf8)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 0xF)]])
            default: bytes.append(byte)
            }
        }
    }
}
