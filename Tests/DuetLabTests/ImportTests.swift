import DuetCore
import DuetLab
import DuetStore
import DuetTestSupport
import Foundation
import Testing

@Suite struct ImportTests {
    static let tsv = "user\titem\tweight\tts\nu1\ti1\t3\t1700000000\nu2\ti1\t1\t1700000100\nu1\ti2\t2\t1700000200\nu1\ti1\t4\t1700000300\n"

    func snapshotFiles(_ home: DuetHome) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: home.snapshotsFolder.path)) ?? []).filter { !$0.hasPrefix(".") }
    }

    @Test func csvWithMappingFoldsDuplicatePairs() async throws {
        try await withScratchFolder { folder in
            let home = DuetHome(root: folder.appendingPathComponent("home"))
            let file = try writeFile(Self.tsv, named: "plays.tsv", in: folder)
            let mapping = ColumnMapping(user: "user", item: "item", weight: "weight", time: "ts")
            let report = try await ImportPipeline.run(Importer(source: .table(file: file, mapping: mapping)), into: .snapshot(SnapshotStore(home: home)))
            let info = try #require(report.snapshot)
            #expect(info.users == 2 && info.items == 2 && info.interactions == 3)
            let snapshot = try SnapshotStore(home: home).open(info.hash, verifyHash: true)
            let u1 = try #require(snapshot.userIndex(of: "u1"))
            let i1 = try #require(snapshot.itemIndex(of: "i1"))
            let entry = try #require(snapshot.row(u1).first { snapshot.items[$0] == UInt32(i1) })
            #expect(snapshot.weights[entry] == 7)
            #expect(snapshot.times[entry] == 1_700_000_300_000)
        }
    }

    /// The bar's error cases: each names the file, the line and the problem, and writes nothing.
    @Test(arguments: [
        ("user\titem\tweight\tts\nu1\ti1\t3\t1\nu2\ti2\t1\n", "plays.tsv:3: expected 4 fields, found 3"),
        ("user\titem\tweight\tts\nu1\ti1\t3\t1\nu2\ti2\tlots\t5\n", "plays.tsv:3: weight 'lots' is not a number"),
        ("", "is empty"),
        ("user\titem\tweight\tts\n", "has no data rows"),
        ("user\titem\tweight\tts\nu1\ti1\t-2\t1\n", "plays.tsv:2: weight -2 is negative"),
        ("user\titem\tweight\tts\nu1\ti1\t2\tyesterday\n", "plays.tsv:2: time 'yesterday'"),
        ("person\titem\tweight\tts\nu1\ti1\t2\t1\n", "no user column 'user'"),
    ])
    func malformedInputStopsTheImportAndWritesNothing(contents: String, message: String) async throws {
        try await withScratchFolder { folder in
            let home = DuetHome(root: folder.appendingPathComponent("home"))
            let file = try writeFile(contents, named: "plays.tsv", in: folder)
            let mapping = ColumnMapping(user: "user", item: "item", weight: "weight", time: "ts")
            for into in [ImportDestination.snapshot(SnapshotStore(home: home)), .eventLog(try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path))] {
                await #expect { try await ImportPipeline.run(Importer(source: .table(file: file, mapping: mapping)), into: into) } throws: { error in
                    "\(error)".contains(message)
                }
            }
            #expect(snapshotFiles(home).isEmpty)
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            #expect(try await log.count(matching: EventFilter()) == 0)
        }
    }

    @Test func missingFileIsNamed() async throws {
        try await withScratchFolder { folder in
            let home = DuetHome(root: folder)
            let missing = folder.appendingPathComponent("nope.tsv").path
            await #expect { try await ImportPipeline.run(Importer(source: .movielens(file: missing)), into: .snapshot(SnapshotStore(home: home))) } throws: {
                "\($0)" == "no such file: \(missing)"
            }
            await #expect { try await ImportPipeline.run(Importer(source: .lastfm(folder: folder.path)), into: .snapshot(SnapshotStore(home: home))) } throws: {
                "\($0)".contains("no such file") && "\($0)".contains("user_artists.dat")
            }
        }
    }

    @Test func skipBadRowsCountsAndReports() async throws {
        try await withScratchFolder { folder in
            let home = DuetHome(root: folder.appendingPathComponent("home"))
            let file = try writeFile("user,item,weight\nu1,i1,1\nu2,i2\nu3,i3,x\nu4,\"i,4\",2\n", named: "plays.csv", in: folder)
            let importer = Importer(source: .table(file: file, mapping: ColumnMapping(user: "user", item: "item", weight: "weight")), skipBadRows: true)
            let report = try await ImportPipeline.run(importer, into: .snapshot(SnapshotStore(home: home)))
            #expect(report.tally.rowsRead == 4)
            #expect(report.tally.rowsSkipped == 2)
            #expect(report.tally.skippedExamples.count == 2)
            #expect(report.tally.skippedExamples[0].contains("plays.csv:3"))
            let snapshot = try SnapshotStore(home: home).open(try #require(report.snapshot).hash)
            #expect(snapshot.itemIndex(of: "i,4") != nil, "quoted field keeps its comma")
        }
    }

    @Test func movieLensBothLayouts() async throws {
        try await withScratchFolder { folder in
            let store = SnapshotStore(home: DuetHome(root: folder.appendingPathComponent("home")))
            let udata = try writeFile("196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n", named: "u.data", in: folder)
            let ratings = try writeFile("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n", named: "ratings.dat", in: folder)
            let a = try #require(try await ImportPipeline.run(Importer(source: .movielens(file: udata)), into: .snapshot(store)).snapshot)
            #expect(a.users == 2 && a.items == 3 && a.interactions == 3)
            #expect(a.firstEvent == 878_887_116_000)
            let b = try #require(try await ImportPipeline.run(Importer(source: .movielens(file: ratings)), into: .snapshot(store)).snapshot)
            #expect(b.users == 2 && b.items == 2 && b.interactions == 3)
            let bad = try writeFile("1::1193::5\n", named: "bad.dat", in: folder)
            await #expect { try await ImportPipeline.run(Importer(source: .movielens(file: bad)), into: .snapshot(store)) } throws: {
                "\($0)".contains("bad.dat:1: expected 4 fields, found 3")
            }
        }
    }

    @Test func jsonLinesIntoTheEventLog() async throws {
        try await withScratchFolder { folder in
            let lines = """
                {"user":"u1","item":"t1","kind":"play","weight":2,"timestamp":"2026-01-01T00:00:00Z"}
                {"user":"u1","item":"t2","kind":"skip","timestamp":1767225601}

                {"user":"u2","item":"t1","kind":"save","timestamp":1767225602,"requestId":"r-9"}
                """
            let file = try writeFile(lines, named: "events.jsonl", in: folder)
            let log = try SQLiteEventLog(path: folder.appendingPathComponent("events.sqlite").path)
            let report = try await ImportPipeline.run(Importer(source: .jsonl(file: file)), into: .eventLog(log))
            #expect(report.eventsAppended == 3)
            #expect(try await log.count(matching: EventFilter(kinds: [.skip])) == 1)

            let broken = try writeFile(lines + "\n{\"user\":\"u3\",\"item\":\"t1\"}\n", named: "broken.jsonl", in: folder)
            await #expect { try await ImportPipeline.run(Importer(source: .jsonl(file: broken)), into: .eventLog(log)) } throws: {
                "\($0)".contains("broken.jsonl:5: missing field 'timestamp'")
            }
            #expect(try await log.count(matching: EventFilter()) == 3, "the failed import appended nothing")
        }
    }

    @Test func snapshotFromTheEventLogLeavesSkipsOutAndIsRepeatable() async throws {
        try await withScratchFolder { folder in
            let home = DuetHome(root: folder)
            let log = try SQLiteEventLog(path: home.eventLogPath.path)
            try await log.append(events: [
                FeedbackEvent(user: "u1", item: "a", kind: .play, weight: 2, timestamp: 1_000),
                FeedbackEvent(user: "u1", item: "b", kind: .skip, weight: 1, timestamp: 2_000),
                FeedbackEvent(user: "u2", item: "a", kind: .save, weight: 1, timestamp: 3_000),
                FeedbackEvent(user: "u2", item: "c", kind: .play, weight: 1, timestamp: 9_000),
            ])
            let store = SnapshotStore(home: home)
            let first = try await ImportPipeline.snapshotFromEventLog(log, store: store, from: nil, until: 5_000, kinds: nil, catalog: nil)
            #expect(first.users == 2 && first.items == 1 && first.interactions == 2)
            let again = try await ImportPipeline.snapshotFromEventLog(log, store: store, from: nil, until: 5_000, kinds: nil, catalog: nil)
            #expect(again.hash == first.hash)
            let all = try await ImportPipeline.snapshotFromEventLog(log, store: store, from: nil, until: nil, kinds: [.play, .skip], catalog: nil)
            #expect(all.interactions == 3)
            #expect(try store.resolve(String(all.hash.prefix(10))).lastPathComponent == "\(all.hash).dsnap")
        }
    }

    @Test(.enabled(if: SharedData.exists(SharedData.lastfm), "needs ../shared/data/lastfm-hetrec2011"))
    func lastfmGivesTheKnownCountsAndAStableHash() async throws {
        try await withScratchFolder { folder in
            let store = SnapshotStore(home: DuetHome(root: folder))
            let source = ImportSource.lastfm(folder: SharedData.file(SharedData.lastfm).path)
            let first = try #require(try await ImportPipeline.run(Importer(source: source), into: .snapshot(store)).snapshot)
            #expect(first.users == 1_892)
            #expect(first.items == 17_632)
            #expect(first.interactions == 92_834)
            let second = try #require(try await ImportPipeline.run(Importer(source: source), into: .snapshot(store)).snapshot)
            #expect(second.hash == first.hash)
            let catalog = try store.catalog(first.hash)
            #expect(catalog["289"]?.title == "Britney Spears")
        }
    }
}
