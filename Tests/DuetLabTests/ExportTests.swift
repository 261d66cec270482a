import DuetCore
@testable import DuetLab
import DuetLabTestSupport
import DuetStore
import DuetTestSupport
import DuetTraining
import Foundation
import Testing

/// Exports read back by an independent reader: the ZIP and .npy layouts parsed here byte by byte,
/// compared with the Lab's own matrices and bundles; refusals leave nothing behind.
@Suite struct ExportTests {
    /// One .npy: its header's descr and shape, and the data bytes after it.
    static func parseNPY(_ bytes: [UInt8]) throws -> (descr: String, shape: [Int], data: ArraySlice<UInt8>) {
        try #require(bytes.count >= 10 && bytes[0] == 0x93 && Array(bytes[1..<6]) == Array("NUMPY".utf8) && bytes[6] == 1)
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        #expect((10 + headerLength) % 64 == 0, "the data starts 64-byte aligned")
        let header = String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.hasSuffix("\n") && header.contains("'fortran_order': False"))
        let descr = try #require(header.firstMatch(of: /'descr': '([^']+)'/)).1
        let shapeText = try #require(header.firstMatch(of: /'shape': \(([^)]*)\)/)).1
        let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return (String(descr), shape, bytes[(10 + headerLength)...])
    }

    static func little<T: FixedWidthInteger>(_ bytes: ArraySlice<UInt8>, at offset: Int, as _: T.Type) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(bytes[bytes.startIndex + offset + i]) << (8 * i) }
        return value
    }

    /// The members of a stored (uncompressed) ZIP, found through its central directory, CRCs checked.
    static func parseZIP(_ bytes: [UInt8]) throws -> [String: [UInt8]] {
        let all = bytes[...]
        let end = try #require((0...(bytes.count - 22)).reversed().first { little(all, at: $0, as: UInt32.self) == 0x0605_4B50 })
        let entries = Int(little(all, at: end + 10, as: UInt16.self))
        var cursor = Int(little(all, at: end + 16, as: UInt32.self))
        var members: [String: [UInt8]] = [:]
        for _ in 0..<entries {
            try #require(little(all, at: cursor, as: UInt32.self) == 0x0201_4B50)
            #expect(little(all, at: cursor + 10, as: UInt16.self) == 0, "stored, not compressed")
            let crc = little(all, at: cursor + 16, as: UInt32.self)
            let size = Int(little(all, at: cursor + 20, as: UInt32.self))
            let nameLength = Int(little(all, at: cursor + 28, as: UInt16.self))
            let local = Int(little(all, at: cursor + 42, as: UInt32.self))
            let name = String(decoding: bytes[(cursor + 46)..<(cursor + 46 + nameLength)], as: UTF8.self)
            try #require(little(all, at: local, as: UInt32.self) == 0x0403_4B50)
            let start = local + 30 + Int(little(all, at: local + 26, as: UInt16.self)) + Int(little(all, at: local + 28, as: UInt16.self))
            let data = Array(bytes[start..<(start + size)])
            #expect(data.withUnsafeBytes { CRC32.update(0, $0) } == crc, "\(name)'s CRC")
            members[name] = data
            cursor += 46 + nameLength
        }
        return members
    }

    static func floats(_ bytes: ArraySlice<UInt8>) -> [Float] {
        stride(from: 0, to: bytes.count, by: 4).map { Float(bitPattern: little(bytes, at: $0, as: UInt32.self)) }
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(Array("123456789".utf8).withUnsafeBytes { CRC32.update(0, $0) } == 0xCBF4_3926)
        #expect(Array("".utf8).withUnsafeBytes { CRC32.update(0, $0) } == 0)
    }

    @Test func factorsAndSplitsReadBackAsTheBundleAndTheSplitHoldThem() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let out = folder.appendingPathComponent("out")
            let files = try await lab.exportFactors(fixture.first, to: out.appendingPathComponent("factors"))
            #expect(files.map { URL(fileURLWithPath: $0.path).lastPathComponent } == ["user_factors.npy", "item_factors.npy", "popularity.npy", "users.txt", "items.txt"])
            let bundle = try await lab.openBundle(fixture.first)
            let users = try Self.parseNPY(Array(try Data(contentsOf: out.appendingPathComponent("factors/user_factors.npy"))))
            #expect(users.descr == "<f4" && users.shape == [bundle.userCount, 8])
            #expect(Self.floats(users.data) == Array(bundle.userFactors))
            let items = try Self.parseNPY(Array(try Data(contentsOf: out.appendingPathComponent("factors/item_factors.npy"))))
            #expect(items.shape == [bundle.itemCount, 8] && Self.floats(items.data) == Array(bundle.itemFactors))
            let ids = try String(contentsOf: out.appendingPathComponent("factors/items.txt"), encoding: .utf8)
            #expect(ids.split(separator: "\n").map(String.init) == bundle.itemIDs)

            _ = try lab.exportSnapshot(nil, split: fixture.split, to: out.appendingPathComponent("split"))
            let (_, snapshot, split) = try lab.loadSplit(fixture.split)
            for part in [SplitPart.train, .test] {
                let members = try Self.parseZIP(Array(try Data(contentsOf: out.appendingPathComponent("split/\(part).npz"))))
                #expect(Set(members.keys) == ["indices.npy", "indptr.npy", "format.npy", "shape.npy", "data.npy"])
                let format = try Self.parseNPY(try #require(members["format.npy"]))
                #expect(format.descr == "|S3" && format.shape == [] && Array(format.data) == Array("csr".utf8))
                let shape = try Self.parseNPY(try #require(members["shape.npy"]))
                #expect(Self.little(shape.data, at: 0, as: Int64.self) == Int64(snapshot.userCount)
                        && Self.little(shape.data, at: 8, as: Int64.self) == Int64(snapshot.itemCount))
                let indptr = try Self.parseNPY(try #require(members["indptr.npy"]))
                let indices = try Self.parseNPY(try #require(members["indices.npy"]))
                let data = try Self.parseNPY(try #require(members["data.npy"]))
                let expected = split.matrix(part, of: snapshot)
                #expect(indptr.descr == "<i8" && indices.descr == "<i4" && data.descr == "<f4")
                #expect((0...snapshot.userCount).map { Int(Self.little(indptr.data, at: 8 * $0, as: Int64.self)) } == expected.rowStart)
                #expect((0..<expected.nonZeroCount).map { UInt32(Self.little(indices.data, at: 4 * $0, as: Int32.self)) } == expected.indices)
                #expect(Self.floats(data.data) == expected.values)
                #expect(expected.nonZeroCount > 100, "\(part) is not trivially empty")
            }
            let users2 = try String(contentsOf: out.appendingPathComponent("split/users.txt"), encoding: .utf8).split(separator: "\n")
            #expect(users2.count == snapshot.userCount && users2.first.map(String.init) == snapshot.userID(0))
            #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("split/validation.npz").path), "no validation part, no file")
        }
    }

    @Test func perUserEvaluationMeansAreTheEvaluationsFigures() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let file = folder.appendingPathComponent("per-user.csv")
            _ = try await fixture.lab.exportEvaluation(candidate: fixture.second, baseline: fixture.first, k: 10, to: file)
            let (comparison, _) = try await fixture.lab.evaluate(candidate: fixture.second, baseline: fixture.first, store: false)
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            let header = lines[0].map(String.init)
            #expect(header.first == "user" && header.contains("candidate_ndcg") && header.contains("baseline_auc"))
            #expect(lines.count - 1 == comparison.candidateMetrics.users)
            func mean(_ column: String) throws -> Double {
                let index = try #require(header.firstIndex(of: column))
                return lines.dropFirst().map { Double($0[index])! }.reduce(0, +) / Double(lines.count - 1)
            }
            for name in ["ndcg", "map", "auc", "recall", "mrr"] {
                #expect(abs(try mean("candidate_\(name)") - comparison.candidateMetrics.value(name)!) < 1e-12, "\(name)")
                #expect(abs(try mean("baseline_\(name)") - comparison.baselineMetrics.value(name)!) < 1e-12, "\(name)")
            }
            #expect(try mean("candidate_ndcg") != (try mean("baseline_ndcg")), "two models, two columns")
        }
    }

    @Test func eventsExportAsCSVAndJSONLinesThatImportBack() async throws {
        try await withScratchFolder { folder in
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let events = [FeedbackEvent(user: "u,1", item: "say \"hi\"", kind: .play, weight: 2.5, timestamp: 1_000, requestID: "r1"),
                          FeedbackEvent(user: "u2", item: "t9", kind: .skip, weight: 1, timestamp: 2_000),
                          FeedbackEvent(user: "ü3", item: "t1", kind: .save, weight: 1, timestamp: 3_000)]
            _ = try await log.append(events: events)
            let csv = folder.appendingPathComponent("e.csv"), jsonl = folder.appendingPathComponent("e.jsonl")
            #expect(try await Lab.exportEvents(from: log, filter: EventFilter(until: 3_000), format: .csv, to: csv).contents == "2 events as csv")
            _ = try await Lab.exportEvents(from: log, filter: EventFilter(), format: .jsonl, to: jsonl)
            let tables = [Importer(source: .table(file: csv.path, mapping: ColumnMapping(user: "user", item: "item", weight: "weight",
                                                                                        time: "timestamp", kind: "kind"))),
                          Importer(source: .jsonl(file: jsonl.path))]
            for (importer, expected) in zip(tables, [Array(events.prefix(2)), events]) {
                let back = try SQLiteEventLog(path: folder.appendingPathComponent("back-\(UUID()).sqlite").path)
                _ = try await ImportPipeline.run(importer, into: .eventLog(back))
                let read = try await back.events(after: 0, matching: EventFilter(), limit: 10).map(\.event)
                #expect(read.map(\.user) == expected.map(\.user) && read.map(\.item) == expected.map(\.item))
                #expect(read.map(\.kind) == expected.map(\.kind) && read.map(\.weight) == expected.map(\.weight))
                #expect(read.map(\.timestamp) == expected.map(\.timestamp))
            }
        }
    }

    @Test func experimentExportGivesEachExposedUserTheirArm() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            let spec = AnalysisEvidenceTests.spec(fixture)
            try await lab.createExperiment(spec)
            try await lab.start(experiment: "exp")
            try await LabFixture.traffic(log, spec: spec, phase: 1, users: 0..<40, at: Date().epochMillis + 5)
            let file = folder.appendingPathComponent("exp.csv")
            _ = try await lab.exportExperiment("exp", phase: nil, eventLog: log, to: file)
            let rows = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
            #expect(rows.count == 40)
            for row in rows {
                let arm = try #require(spec.assignedArm(for: row[0])).name
                let index = try #require(Int(row[0].dropFirst()))
                #expect(row[1] == arm, "\(row[0])")
                // LabFixture.traffic: treatment plays 3 + i % 3, control 1 + i % 3.
                #expect(Double(row[4]) == Double((arm == "treatment" ? 3 : 1) + index % 3), "\(row[0]) plays")
            }
            await #expect { try await lab.exportExperiment("nope", phase: nil, eventLog: log, to: file) } throws: { "\($0)".contains("nope") }
        }
    }

    @Test func refusedExportsNameTheProblemAndLeaveNothingBehind() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let notAFolder = folder.appendingPathComponent("file")
            try Data("keep".utf8).write(to: notAFolder)
            await #expect { try await lab.exportFactors(fixture.first, to: notAFolder) } throws: { "\($0)".contains("is a file, not a folder") }
            #expect(try Data(contentsOf: notAFolder) == Data("keep".utf8))
            await #expect { try await lab.exportFactors("f00dfeed", to: folder.appendingPathComponent("x")) } throws: { _ in true }
            #expect(throws: DuetError.self) { try lab.exportSnapshot("deadbeef", split: fixture.split, to: folder.appendingPathComponent("y")) }

            // A writer that breaks its promise mid-way: no file, and no temporary one left over.
            let broken = folder.appendingPathComponent("broken")
            try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
            #expect(throws: DuetError.self) {
                try NumpyFormat.write(to: broken.appendingPathComponent("a.npy"), descr: "<f4", shape: [4]) { write in
                    try [Float(1), 2].withUnsafeBytes { try write($0) }
                }
            }
            func abandonedArchive() throws {
                let archive = try NumpyArchive(destination: broken.appendingPathComponent("b.npz"))
                try archive.beginArray("x", descr: "<i8", shape: [2])
                try archive.write(array: [Int64(1)])
                #expect(throws: DuetError.self) { try archive.endArray() }
            }
            try abandonedArchive()
            #expect(try FileManager.default.contentsOfDirectory(atPath: broken.path).isEmpty)
        }
    }
}
