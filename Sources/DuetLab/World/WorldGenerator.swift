import DuetCore
public import Foundation
import DuetKernels

/// Writes a world to a folder by streaming: users are generated in blocks, in parallel, and
/// written in order, so memory stays flat whatever the number of events.
public struct WorldGenerator: Sendable {
    public let world: World
    public var threads: Int
    static let usersPerBlock = 2_000

    public init(world: World, threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.world = world
        self.threads = max(1, threads)
    }

    /// Generates into `folder`, which must not exist yet. Everything is written under a temporary
    /// name first and renamed into place, so an interrupted run leaves no half-written world.
    public func generate(into folder: URL, progress: ((_ eventsDone: Int) -> Void)? = nil) throws -> WorldSummary {
        let started = Date()
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: folder.path) {
            throw DuetError.refused("\(folder.path) already exists; choose a new folder (worlds are never overwritten)")
        }
        let parent = folder.deletingLastPathComponent()
        try fileManager.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(folder.lastPathComponent).tmp-\(UUID().uuidString.prefix(8))")
        try fileManager.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            try writeCatalog(into: staging)
            var summary = try writeEvents(into: staging, progress: progress)
            summary.seconds = Date().timeIntervalSince(started)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(summary).write(to: staging.appendingPathComponent(WorldFiles.spec), options: .atomic)
            try fileManager.moveItem(at: staging, to: folder)
            AtomicFileWriter.syncFolder(parent)
            return summary
        } catch {
            try? fileManager.removeItem(at: staging)
            throw error
        }
    }

    private func writeCatalog(into folder: URL) throws {
        let writer = try AtomicFileWriter(folder: folder)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for track in 0..<world.spec.tracks {
            try writer.write(Array(try encoder.encode(world.catalogItem(track))))
            try writer.write([0x0A])
        }
        try writer.commit(to: folder.appendingPathComponent(WorldFiles.catalog))
    }

    private struct Block: Sendable {
        var bytes: [UInt8] = []
        var events = 0, plays = 0, skips = 0, saves = 0
    }

    private func writeEvents(into folder: URL, progress: ((Int) -> Void)?) throws -> WorldSummary {
        let spec = world.spec
        let writer = try AtomicFileWriter(folder: folder)
        try writer.write(Array("user\titem\tkind\tweight\ttimestamp\n".utf8))
        let blockCount = (spec.users + Self.usersPerBlock - 1) / Self.usersPerBlock
        let wave = threads * 4
        var totals = Block()
        var first = 0
        while first < blockCount {
            let count = min(wave, blockCount - first)
            let blocks = ResultSlots<Block>(count: count)
            let start = first
            DispatchQueue.concurrentPerform(iterations: count) { offset in
                blocks[offset] = generateBlock(start + offset)
            }
            for offset in 0..<count {
                let block = blocks[offset]!
                try writer.write(block.bytes)
                totals.events += block.events
                totals.plays += block.plays
                totals.skips += block.skips
                totals.saves += block.saves
            }
            progress?(totals.events)
            first += count
        }
        let hash = writer.sha256Hex
        try writer.commit(to: folder.appendingPathComponent(WorldFiles.events))
        return WorldSummary(spec: spec, events: totals.events, plays: totals.plays, skips: totals.skips,
                            saves: totals.saves, eventsSHA256: hash, seconds: 0)
    }

    private func generateBlock(_ block: Int) -> Block {
        let spec = world.spec
        var out = Block()
        let meanEvents = Double(spec.events) / Double(spec.users)
        let span = Double(spec.days) * 86_400
        let firstUser = block * Self.usersPerBlock
        let lastUser = min(firstUser + Self.usersPerBlock, spec.users)
        out.bytes.reserveCapacity(Int(meanEvents * Double(lastUser - firstUser) * 32))
        var times: [Double] = []
        for user in firstUser..<lastUser {
            var rng = SplitMix64(seed: spec.seed, 9, UInt64(user))
            let genres = world.tasteGenres(user: user)
            let taste = world.tasteVector(user: user)
            // Log-normal activity with mean `meanEvents`: a few heavy listeners, many light ones.
            let sigma = 0.8
            let activity = meanEvents * Foundation.exp(sigma * rng.gaussian() - sigma * sigma / 2)
            let count = max(1, Int(activity.rounded()))
            times.removeAll(keepingCapacity: true)
            for _ in 0..<count { times.append(rng.uniform() * span) }
            times.sort()
            let userText = Array(world.userID(user).utf8)
            for offset in times {
                let track = world.encounter(taste: genres, rng: &rng)
                let seconds = spec.start / 1000 + Int64(offset)
                if rng.uniform() < world.affinity(taste: taste, track: track) {
                    // Replays are more likely for tracks the listener loves.
                    var plays = 1
                    while plays < 50, rng.uniform() < 0.35 { plays += 1 }
                    append(&out.bytes, user: userText, track: track, kind: Self.playText, weight: plays, seconds: seconds)
                    out.plays += 1
                    out.events += 1
                    if rng.uniform() < 0.08 {
                        append(&out.bytes, user: userText, track: track, kind: Self.saveText, weight: 1, seconds: seconds)
                        out.saves += 1
                        out.events += 1
                    }
                } else {
                    append(&out.bytes, user: userText, track: track, kind: Self.skipText, weight: 1, seconds: seconds)
                    out.skips += 1
                    out.events += 1
                }
            }
        }
        return out
    }

    private static let playText = Array("play".utf8)
    private static let skipText = Array("skip".utf8)
    private static let saveText = Array("save".utf8)

    private func append(_ bytes: inout [UInt8], user: [UInt8], track: Int, kind: [UInt8], weight: Int, seconds: Int64) {
        bytes.append(contentsOf: user)
        bytes.append(0x09)
        bytes.append(0x74) // "t"
        Self.appendDecimal(&bytes, Int64(track))
        bytes.append(0x09)
        bytes.append(contentsOf: kind)
        bytes.append(0x09)
        Self.appendDecimal(&bytes, Int64(weight))
        bytes.append(0x09)
        Self.appendDecimal(&bytes, seconds)
        bytes.append(0x0A)
    }

    static func appendDecimal(_ bytes: inout [UInt8], _ value: Int64) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var remaining = value.magnitude
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[count] = UInt8(truncatingIfNeeded: remaining % 10) + 0x30
                remaining /= 10
                count += 1
            } while remaining > 0
            if value < 0 { bytes.append(0x2D) }
            for index in stride(from: count - 1, through: 0, by: -1) { bytes.append(buffer[index]) }
        }
    }
}

