import ArgumentParser
import DuetCommandLine
import DuetCore
import Foundation

/// `duet bench sha256`: how fast bundles and chunks are checksummed, on each block function.
/// `bench/sha256-peer.py` runs it beside OpenSSL (Python's hashlib) on the same machine.
struct DigestBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sha256",
        abstract: "SHA-256 throughput over random bytes: whole, and in the 16 KiB chunks a bundle's pages are verified in."
    )
    @Option(help: "Megabytes to hash per measurement.") var megabytes: Int = 256
    @Option(help: "Measurements per case; the best is reported.") var repeats: Int = 3
    @OptionGroup var output: OutputOptions

    struct Case: Codable {
        var blockFunction: String
        var shape: String
        var gigabytesPerSecond: Double
    }

    func validate() throws {
        guard (1...8_192).contains(megabytes) else { throw ValidationError("--megabytes must be in 1…8192") }
        guard (1...20).contains(repeats) else { throw ValidationError("--repeats must be in 1…20") }
    }

    func run() throws {
        var generator = SplitMix64(seed: 7)
        let words = (0..<(megabytes << 17)).map { _ in generator.next() }
        var cases: [Case] = []
        defer { SHA256.allowAcceleration(true) }
        for accelerated in [true, false] {
            let name = SHA256.allowAcceleration(accelerated) ? "sha-extensions" : "portable"
            if accelerated && name == "portable" { continue }
            words.withUnsafeBytes { bytes in
                for shape in ["whole", "16KiB-chunks"] {
                    var best = Double.infinity
                    for _ in 0..<repeats {
                        let clock = ContinuousClock(), started = clock.now
                        if shape == "whole" {
                            _ = SHA256.hash(bytes)
                        } else {
                            _ = ChunkDigests.compute(bytes, chunkBytes: ChunkDigests.defaultChunkBytes)
                        }
                        best = min(best, (clock.now - started).seconds)
                    }
                    cases.append(Case(blockFunction: name, shape: shape, gigabytesPerSecond: Double(bytes.count) / best / 1e9))
                }
            }
        }
        if output.json { return try printJSON(cases) }
        for item in cases {
            print("\(item.blockFunction.padding(toLength: 15, withPad: " ", startingAt: 0)) \(item.shape.padding(toLength: 13, withPad: " ", startingAt: 0)) "
                + String(format: "%6.2f GB/s", item.gigabytesPerSecond))
        }
    }
}
