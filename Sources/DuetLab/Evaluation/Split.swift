public import DuetCore
public import DuetTraining
public import Foundation

/// How a snapshot's interactions are divided into train and test.
public enum SplitMethod: Codable, Sendable, Hashable, CustomStringConvertible {
    /// Each (user, item) pair goes to test with probability `testFraction`, by a seeded hash of the
    /// pair, so the assignment does not depend on order or on other pairs.
    case random(testFraction: Double, seed: UInt64)
    /// Each user's last `count` interactions by time go to test (users with fewer than count + 1 keep all in train).
    case leaveLastN(count: Int)
    /// Interactions at or after `cutoff` (ms since epoch) go to test.
    case temporal(cutoff: EpochMillis)

    public var description: String {
        switch self {
        case let .random(fraction, seed): "random \(fraction) (seed \(seed))"
        case let .leaveLastN(count): "leave last \(count)"
        case let .temporal(cutoff): "temporal cut-off \(TimestampParser.iso8601String(cutoff))"
        }
    }

    public func validate() throws(DuetError) {
        switch self {
        case let .random(fraction, _):
            guard fraction > 0, fraction < 1 else { throw .invalidValue(field: "test fraction", reason: "\(fraction) must be in (0, 1)") }
        case let .leaveLastN(count):
            guard count >= 1 else { throw .invalidValue(field: "leave-last", reason: "must be ≥ 1") }
        case .temporal:
            break
        }
    }
}

/// Which part of a split an interaction belongs to.
public enum SplitPart: UInt8, Sendable {
    case train = 0, test = 1, validation = 2
}

/// A split of one snapshot: a part for each of its interactions, in snapshot order.
public struct Split: Sendable {
    public var snapshotHash: String
    public var method: SplitMethod
    public var parts: [UInt8]

    public init(snapshot: Snapshot, method: SplitMethod) throws {
        try method.validate()
        snapshotHash = snapshot.hash
        self.method = method
        parts = Self.assign(snapshot: snapshot, method: method, eligible: nil)
    }

    /// Carves a validation part out of this split's train part, for tuning; test stays untouched.
    public func withValidation(fraction: Double, seed: UInt64, snapshot: Snapshot) throws -> Split {
        let carve = SplitMethod.random(testFraction: fraction, seed: seed)
        try carve.validate()
        var copy = self
        let marks = Self.assign(snapshot: snapshot, method: carve, eligible: parts.map { $0 == SplitPart.train.rawValue })
        for index in parts.indices where parts[index] == SplitPart.train.rawValue && marks[index] == SplitPart.test.rawValue {
            copy.parts[index] = SplitPart.validation.rawValue
        }
        return copy
    }

    static func assign(snapshot: Snapshot, method: SplitMethod, eligible: [Bool]?) -> [UInt8] {
        var parts = [UInt8](repeating: SplitPart.train.rawValue, count: snapshot.interactionCount)
        switch method {
        case let .random(fraction, seed):
            let userHashes = (0..<snapshot.userCount).map { Assignment.fnv1a32(snapshot.userID($0)) }
            let itemHashes = (0..<snapshot.itemCount).map { Assignment.fnv1a32(snapshot.itemID($0)) }
            let threshold = UInt64(fraction * Double(UInt64.max >> 11)) << 11
            for user in 0..<snapshot.userCount {
                for entry in snapshot.row(user) where eligible?[entry] ?? true {
                    let key = UInt64(userHashes[user]) << 32 | UInt64(itemHashes[Int(snapshot.items[entry])])
                    if SplitMix64.mix(seed ^ SplitMix64.mix(key)) < threshold { parts[entry] = SplitPart.test.rawValue }
                }
            }
        case let .leaveLastN(count):
            for user in 0..<snapshot.userCount {
                let entries = snapshot.row(user).filter { eligible?[$0] ?? true }
                guard entries.count > count else { continue }
                // Latest first; ties broken by item index so the split is deterministic.
                let latest = entries.sorted {
                    snapshot.times[$0] != snapshot.times[$1] ? snapshot.times[$0] > snapshot.times[$1] : snapshot.items[$0] > snapshot.items[$1]
                }
                for entry in latest.prefix(count) { parts[entry] = SplitPart.test.rawValue }
            }
        case let .temporal(cutoff):
            for entry in 0..<snapshot.interactionCount where (eligible?[entry] ?? true) && snapshot.times[entry] >= cutoff {
                parts[entry] = SplitPart.test.rawValue
            }
        }
        return parts
    }

    public func count(_ part: SplitPart) -> Int { parts.reduce(0) { $0 + ($1 == part.rawValue ? 1 : 0) } }

    /// The users × items matrix of one part, over the snapshot's full index space.
    public func matrix(_ part: SplitPart, of snapshot: Snapshot) -> InteractionMatrix {
        var rowStart = [0]
        rowStart.reserveCapacity(snapshot.userCount + 1)
        var indices: [UInt32] = [], values: [Float] = []
        for user in 0..<snapshot.userCount {
            for entry in snapshot.row(user) where parts[entry] == part.rawValue {
                indices.append(snapshot.items[entry])
                values.append(snapshot.weights[entry])
            }
            rowStart.append(indices.count)
        }
        return InteractionMatrix(rows: snapshot.userCount, columns: snapshot.itemCount, rowStart: rowStart, indices: indices, values: values)
    }
}

/// A split as stored in a home: `splits/<id>.json`, its id a hash of the snapshot and the method,
/// so the same split is always found again rather than recomputed differently.
public struct SplitRecord: Codable, Sendable, Hashable {
    public var id: String
    public var snapshot: String
    public var method: SplitMethod
    public var train: Int
    public var test: Int
    public var createdAt: EpochMillis

    public static func id(snapshot: String, method: SplitMethod) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let digest = SHA256.hash(data: Data(snapshot.utf8) + ((try? encoder.encode(method)) ?? Data()))
        return digest.prefix(8).lowercaseHex
    }
}

public struct SplitStore: Sendable {
    public let folder: URL

    public init(home: DuetHome) { folder = home.root.appendingPathComponent("splits", isDirectory: true) }

    /// Records the split (idempotent) and returns its record.
    @discardableResult
    public func save(_ split: Split) throws -> SplitRecord {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let record = SplitRecord(id: SplitRecord.id(snapshot: split.snapshotHash, method: split.method), snapshot: split.snapshotHash,
                                 method: split.method, train: split.count(.train), test: split.count(.test), createdAt: Date().epochMillis)
        let url = folder.appendingPathComponent("\(record.id).json")
        if let existing = try? load(record.id) { return existing }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(record).write(to: url, options: .atomic)
        return record
    }

    public func load(_ id: String) throws -> SplitRecord {
        try Identifier.validateFileSafe(id, field: "split id")
        let url = folder.appendingPathComponent("\(id).json")
        guard let data = FileManager.default.contents(atPath: url.path) else { throw DuetError.notFound(kind: "split", id: id) }
        return try JSONDecoder().decode(SplitRecord.self, from: data)
    }

    public func list() -> [SplitRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { try? load(String($0.dropLast(5))) }.sorted { $0.createdAt < $1.createdAt }
    }
}
