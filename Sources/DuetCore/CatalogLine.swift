/// Reads one catalogue line in the shape bundles write it: a flat JSON object with exactly the keys
/// `id`, `title`, `tags`, `available` and optionally `artist`. Anything else (other keys, numbers,
/// invalid UTF-8, a lone surrogate) gives nil, and the caller decodes the line with JSONDecoder,
/// which has the final word. JSONDecoder took 40% of loading a 100k-item bundle.
enum CatalogLine {
    static func parse(_ line: UnsafeRawBufferPointer) -> CatalogItem? {
        var reader = Reader(bytes: line)
        var id: String?, title: String?, artist: String?, tags: [String]?, available: Bool?
        var attributes: [String: String]?
        var sawArtist = false, sawAttributes = false
        guard reader.take(UInt8(ascii: "{")) else { return nil }
        if !reader.take(UInt8(ascii: "}")) {
            repeat {
                guard let key = reader.string(), reader.take(UInt8(ascii: ":")) else { return nil }
                switch key {
                case "id" where id == nil: id = reader.string()
                case "title" where title == nil: title = reader.string()
                case "artist" where !sawArtist:
                    sawArtist = true
                    if !reader.literal("null") {
                        guard let value = reader.string() else { return nil }
                        artist = value
                    }
                case "tags" where tags == nil: tags = reader.strings()
                case "attributes" where !sawAttributes:
                    sawAttributes = true
                    if !reader.literal("null") {
                        guard let values = reader.stringObject() else { return nil }
                        attributes = values
                    }
                case "available" where available == nil:
                    if reader.literal("true") { available = true } else if reader.literal("false") { available = false }
                default: return nil
                }
            } while reader.take(UInt8(ascii: ","))
            guard reader.take(UInt8(ascii: "}")) else { return nil }
        }
        guard reader.atEnd, let id, let title, let tags, let available else { return nil }
        return CatalogItem(id: id, title: title, artist: artist, tags: tags, available: available, attributes: attributes)
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        mutating func skipSpace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        var atEnd: Bool {
            mutating get {
                skipSpace()
                return index == bytes.count
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func literal(_ word: StaticString) -> Bool {
            skipSpace()
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
            index += count
            return true
        }

        mutating func strings() -> [String]? {
            guard take(UInt8(ascii: "[")) else { return nil }
            var values: [String] = []
            if take(UInt8(ascii: "]")) { return values }
            repeat {
                guard let value = string() else { return nil }
                values.append(value)
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]")) ? values : nil
        }

        /// An object of strings; a repeated key is left to JSONDecoder.
        mutating func stringObject() -> [String: String]? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var values: [String: String] = [:]
            if take(UInt8(ascii: "}")) { return values }
            repeat {
                guard let key = string(), take(UInt8(ascii: ":")), let value = string(), values.updateValue(value, forKey: key) == nil else { return nil }
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}")) ? values : nil
        }

        /// A JSON string; nil for anything JSONDecoder might judge differently.
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            // Most strings have no escape: one scan, then one validated copy.
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\"), bytes[index] >= 0x20 { index += 1 }
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                index += 1
                return String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<index - 1]), as: UTF8.self)
            }
            var utf8 = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(validating: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        // Basic-plane scalars only; surrogate pairs are left to JSONDecoder.
                        guard let unit = hex4(), !(0xD800...0xDFFF).contains(unit), let scalar = Unicode.Scalar(unit) else { return nil }
                        utf8.append(contentsOf: String(Character(scalar)).utf8)
                    default: return nil
                    }
                case 0..<0x20: return nil
                default: utf8.append(byte)
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                index += 1
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
    }
}
