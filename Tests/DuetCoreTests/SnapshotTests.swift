import DuetCore
import DuetTestSupport
import Foundation
import Testing

@Suite struct SnapshotTests {
    static let columns = SnapshotColumns(
        userIDs: ["alice", "bob", "carol"], itemIDs: ["i1", "i2", "i3", "i4"],
        rowStart: [0, 2, 2, 5], items: [0, 3, 1, 2, 3], weights: [1, 2.5, 3, 4, 5],
        times: [10, 20, 30, 40, 50])

    @Test func roundTripsThroughTheMemoryMap() async throws {
        try await withScratchFolder { folder in
            let hash = try SnapshotWriter.write(Self.columns, into: folder)
            let again = try SnapshotWriter.write(Self.columns, into: folder)
            #expect(hash == again)
            let snapshot = try Snapshot(path: folder.appendingPathComponent("\(hash).dsnap").path, verifyHash: true)
            #expect(snapshot.userCount == 3)
            #expect(snapshot.itemCount == 4)
            #expect(snapshot.interactionCount == 5)
            #expect(snapshot.timeRange == 10...50)
            #expect(snapshot.row(1).isEmpty)
            #expect(snapshot.row(2).map { snapshot.itemID(Int(snapshot.items[$0])) } == ["i2", "i3", "i4"])
            #expect(Array(snapshot.weights) == [1, 2.5, 3, 4, 5])
            #expect(snapshot.userIndex(of: "carol") == 2)
            #expect(snapshot.userIndex(of: "dave") == nil)
            #expect(snapshot.itemIndex(of: "i1") == 0)
            #expect(snapshot.itemIndex(of: "i0") == nil)
        }
    }

    @Test func refusesTruncatedAndCorruptedFiles() async throws {
        try await withScratchFolder { folder in
            let hash = try SnapshotWriter.write(Self.columns, into: folder)
            let original = try Data(contentsOf: folder.appendingPathComponent("\(hash).dsnap"))

            let truncated = folder.appendingPathComponent("truncated.dsnap")
            try original.prefix(original.count - 16).write(to: truncated)
            #expect { try Snapshot(path: truncated.path) } throws: { "\($0)".contains("truncated") }

            var header = original
            header[20] ^= 0xFF
            let badHeader = folder.appendingPathComponent("header.dsnap")
            try header.write(to: badHeader)
            #expect { try Snapshot(path: badHeader.path) } throws: { "\($0)".contains("header checksum") }

            // A flipped weight byte keeps the structure valid; only the hash can catch it.
            var body = original
            body[body.count - 200] ^= 0x01
            let renamed = folder.appendingPathComponent("\(hash)x.dsnap")
            try body.write(to: renamed)
            #expect { try Snapshot(path: renamed.path, verifyHash: true) } throws: { "\($0)".contains("checksum mismatch") }

            #expect { try Snapshot(path: folder.appendingPathComponent("missing.dsnap").path) } throws: { "\($0)".contains("no such file") }
            try Data(String(repeating: "not a snapshot ", count: 20).utf8)
                .write(to: folder.appendingPathComponent("junk.dsnap"))
            #expect { try Snapshot(path: folder.appendingPathComponent("junk.dsnap").path) } throws: { "\($0)".contains("bad magic") }
        }
    }
}
