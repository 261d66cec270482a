import Foundation

/// Markup that is safe by construction. String literals in the source are the author's markup;
/// every interpolated value is escaped for text and for double-quoted attributes alike, so data
/// can never open a tag, close an attribute or start a script. Other `HTML` values compose as they
/// are. Raw markup needs `HTML(trustedMarkup:)`, visible at its call site.
///
/// Attributes must be written with double quotes, and URLs in `href`/`action` through
/// `\(path: …)`, which percent-encodes each segment so no data can become a `javascript:` URL.
public struct HTML: Sendable, Equatable, CustomStringConvertible, ExpressibleByStringInterpolation {
    public private(set) var rendered: String

    public var description: String { rendered }

    public init(stringLiteral literal: String) { rendered = literal }

    public init(stringInterpolation: StringInterpolation) { rendered = stringInterpolation.output }

    /// Markup not built by this type, inserted as is. Only for our own fixed markup.
    public init(trustedMarkup: String) { rendered = trustedMarkup }

    public static let empty: HTML = ""

    public static func + (lhs: HTML, rhs: HTML) -> HTML { HTML(trustedMarkup: lhs.rendered + rhs.rendered) }
    public static func += (lhs: inout HTML, rhs: HTML) { lhs.rendered += rhs.rendered }

    public struct StringInterpolation: StringInterpolationProtocol {
        var output = ""

        public init(literalCapacity: Int, interpolationCount: Int) { output.reserveCapacity(literalCapacity + interpolationCount * 16) }

        public mutating func appendLiteral(_ literal: String) { output += literal }

        /// Text or an attribute value: always escaped.
        public mutating func appendInterpolation(_ text: String) { output += HTML.escape(text) }

        public mutating func appendInterpolation(_ text: Substring) { output += HTML.escape(String(text)) }

        /// Numbers and other values: escaped too, so no description can carry markup.
        public mutating func appendInterpolation<Value: CustomStringConvertible>(_ value: Value) { output += HTML.escape(value.description) }

        /// A fragment built by this type (or `trustedMarkup`), inserted as is.
        public mutating func appendInterpolation(_ fragment: HTML) { output += fragment.rendered }

        public mutating func appendInterpolation(_ fragments: [HTML]) { for fragment in fragments { output += fragment.rendered } }

        /// A same-site path: each segment is percent-encoded, and it always starts with "/", so it
        /// can be neither a scheme (`javascript:`) nor another host.
        public mutating func appendInterpolation(path segments: String...) { appendInterpolation(path: segments) }

        public mutating func appendInterpolation(path segments: [String]) {
            output += "/" + segments.map { HTML.escape($0.addingPercentEncoding(withAllowedCharacters: HTML.segmentCharacters) ?? "") }.joined(separator: "/")
        }
    }

    static let segmentCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    /// Escapes the five characters that matter in text and in quoted attributes.
    public static func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else { return text }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 16)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

extension Sequence where Element == HTML {
    public func joined(separator: HTML = .empty) -> HTML {
        var result = HTML.empty
        for (index, fragment) in enumerated() {
            if index > 0 { result += separator }
            result += fragment
        }
        return result
    }
}
