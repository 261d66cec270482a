import Foundation
public import Logging

/// How log lines are written on standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    /// key=value pairs, values quoted when they hold a space, '=' or '"' (Go's logfmt, Grafana Loki's parser).
    case logfmt
    /// One JSON object per line.
    case json
}

/// Log lines on standard error, as logfmt or JSON, with the metadata rendered when a line is
/// written. StreamLogHandler renders it each time a key is set, and Hummingbird sets the request id
/// on every request's logger, most of which never write a line: that rendering was 1.5% of Serve's
/// time under load.
public struct ServeLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: LogFormat

    public init(label: String, logLevel: Logger.Level = .info, format: LogFormat = .logfmt) {
        self.label = label
        self.logLevel = logLevel
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // One write per line, so lines from concurrent requests do not interleave.
        render(event).utf8CString.withUnsafeBufferPointer { bytes in
            _ = bytes.withMemoryRebound(to: UInt8.self) { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
        }
    }

    func render(_ event: LogEvent) -> String {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata { all.merge(explicit) { _, new in new } }
        if let error = event.error {
            all["error.message"] = "\(error)"
            all["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        // The fixed fields first, then the metadata sorted; a metadata key never hides a fixed one.
        var fields = [("time", Self.timestamp()), ("level", "\(event.level)"), ("logger", label), ("source", event.source), ("msg", "\(event.message)")]
        let fixed = Set(fields.map(\.0))
        fields += all.sorted { $0.key < $1.key }.map { (fixed.contains($0.key) ? "meta.\($0.key)" : $0.key, "\($0.value)") }
        switch format {
        case .logfmt: return fields.map { "\(Self.logfmtKey($0.0))=\(Self.logfmtValue($0.1))" }.joined(separator: " ") + "\n"
        case .json: return "{" + fields.map { "\(Self.jsonString($0.0)):\(Self.jsonString($0.1))" }.joined(separator: ",") + "}\n"
        }
    }

    /// Keys keep letters, digits and `._-`; anything else becomes `_`.
    static func logfmtKey(_ key: String) -> String {
        let cleaned = String(key.unicodeScalars.map { scalar -> Character in
            CharacterSet.alphanumerics.contains(scalar) && scalar.isASCII || "._-".unicodeScalars.contains(scalar) ? Character(scalar) : "_"
        })
        return cleaned.isEmpty ? "_" : cleaned
    }

    /// Bare when safe; else quoted, with `\`, `"` and control characters escaped.
    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7F }
        guard needsQuotes else { return value }
        return "\"" + escaped(value) + "\""
    }

    static func jsonString(_ value: String) -> String { "\"" + escaped(value) + "\"" }

    /// The escaping logfmt's quoted values and JSON strings share.
    static func escaped(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count + 8)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// UTC, millisecond precision, RFC 3339.
    static func timestamp() -> String {
        let now = Date().timeIntervalSince1970
        var seconds = time_t(now.rounded(.down))
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "unknown" }
        var buffer = [CChar](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let base = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return base + String(format: ".%03dZ", min(999, Int((now - now.rounded(.down)) * 1_000)))
    }
}
