import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress bar with rate and ETA on stderr, drawn only when stdout is a terminal,
/// so pipes and CI logs stay clean.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let total: Int?
    private let unit: String
    private let started = Date()
    private var lastDraw = Date.distantPast
    private let enabled: Bool
    private let lock = NSLock()

    init(_ label: String, total: Int?, unit: String, quiet: Bool = false) {
        self.label = label
        self.total = total
        self.unit = unit
        enabled = !quiet && isatty(STDOUT_FILENO) == 1
    }

    func update(_ done: Int) {
        guard enabled else { return }
        lock.withLock {
            let now = Date()
            guard now.timeIntervalSince(lastDraw) >= 0.2 else { return }
            lastDraw = now
            let elapsed = max(now.timeIntervalSince(started), 1e-6)
            let rate = Double(done) / elapsed
            var line = "\r\(label) "
            if let total, total > 0 {
                let fraction = min(1, Double(done) / Double(total))
                let width = 24
                let filled = Int(fraction * Double(width))
                line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                line += String(format: "%3.0f%% ", fraction * 100)
                if rate > 0 { line += "ETA \(Self.duration(Double(total - done) / rate)) " }
            } else {
                line += "\(Self.compact(Double(done))) \(unit) "
            }
            line += "\(Self.compact(rate)) \(unit)/s   "
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }

    static func compact(_ value: Double) -> String {
        switch value {
        case 1e9...: return String(format: "%.1fG", value / 1e9)
        case 1e6...: return String(format: "%.1fM", value / 1e6)
        case 1e3...: return String(format: "%.1fk", value / 1e3)
        default: return String(format: "%.0f", value)
        }
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        if seconds < 60 { return String(format: "%.0fs", seconds) }
        if seconds < 3600 { return String(format: "%.0fm%02.0fs", (seconds / 60).rounded(.down), seconds.truncatingRemainder(dividingBy: 60)) }
        return String(format: "%.1fh", seconds / 3600)
    }
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
}
