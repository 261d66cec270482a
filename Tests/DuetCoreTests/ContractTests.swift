@testable import DuetCore
import Foundation
import Testing

@Suite struct ContractTests {
    @Test func feedbackEventAcceptsISOAndEpochTimes() throws {
        let decoder = JSONDecoder()
        let iso = try decoder.decode(FeedbackEvent.self, from: Data(#"{"user":"u1","item":"t9","kind":"play","weight":3,"timestamp":"2026-01-02T03:04:05Z"}"#.utf8))
        let seconds = try decoder.decode(FeedbackEvent.self, from: Data(#"{"user":"u1","item":"t9","kind":"play","weight":3,"timestamp":1767323045}"#.utf8))
        let millis = try decoder.decode(FeedbackEvent.self, from: Data(#"{"user":"u1","item":"t9","kind":"play","weight":3,"timestamp":1767323045000}"#.utf8))
        #expect(iso.timestamp == 1_767_323_045_000)
        #expect(seconds == iso)
        #expect(millis == iso)
        let again = try decoder.decode(FeedbackEvent.self, from: try JSONEncoder().encode(iso))
        #expect(again == iso)
    }

    @Test(arguments: [
        (#"{"user":"","item":"t","timestamp":1}"#, "user"),
        (#"{"user":"u","item":"t\u0007x","timestamp":1}"#, "control character"),
        (#"{"user":"u","item":"t","kind":"Play!","timestamp":1}"#, "kind"),
        (#"{"user":"u","item":"t","weight":-1,"timestamp":1}"#, "weight"),
        (#"{"user":"u","item":"t"}"#, "timestamp"),
    ])
    func feedbackEventRejectsBadInput(json: String, mentions: String) {
        do {
            _ = try JSONDecoder().decode(FeedbackEvent.self, from: Data(json.utf8))
            Issue.record("accepted \(json)")
        } catch {
            #expect("\(error)".contains(mentions), "error \(error) should mention \(mentions)")
        }
    }

    /// A bundle's catalogue is JSON lines; a bad line is named by number.
    /// Chunk digests come with their chunk size, one 32-byte digest per chunk of the graph; an older
    /// manifest without either still reads, and its id (the hash of its JSON) does not change.
    @Test func indexManifestChunkDigestsMustMatchTheGraph() throws {
        let file = BundleFile(sha256: String(repeating: "a", count: 64), bytes: 40_000)
        func manifest(chunkBytes: Int?, digestBytes: Int?) -> IndexManifest {
            var files = [IndexFiles.graph: file, IndexFiles.itemIDs: BundleFile(sha256: String(repeating: "b", count: 64), bytes: 30)]
            if let digestBytes { files[IndexFiles.graphChunks] = BundleFile(sha256: String(repeating: "c", count: 64), bytes: digestBytes) }
            return IndexManifest(name: "tracks/x", kind: .hnsw, metric: "cosine", dimension: 8, itemCount: 10, source: IndexSource(algorithm: "als"),
                                 parameters: [:], quality: nil, createdAt: 1, files: files, graphChunkBytes: chunkBytes)
        }
        try manifest(chunkBytes: 16_384, digestBytes: 3 * 32).validate()
        try manifest(chunkBytes: nil, digestBytes: nil).validate()
        for (chunkBytes, digestBytes, message) in [(16_384, 2 * 32, "one digest per"), (nil, 96, "come together"), (16_384, nil, "come together"),
                                                   (10_000, 4 * 32, "power of two"), (1_024, 40 * 32, "power of two")] as [(Int?, Int?, String)] {
            #expect { try manifest(chunkBytes: chunkBytes, digestBytes: digestBytes).validate() } throws: { "\($0)".contains(message) }
        }
        let old = try manifest(chunkBytes: nil, digestBytes: nil).canonicalJSON()
        #expect(!String(decoding: old, as: UTF8.self).contains("graphChunkBytes"))
        #expect(try JSONDecoder().decode(IndexManifest.self, from: old).graphChunkBytes == nil)
    }

    @Test func catalogueLinesDecodeAndABadOneIsNamed() throws {
        func items(_ text: String) throws -> [CatalogItem] {
            let bytes = Array(text.utf8)
            return try bytes.withUnsafeBytes { try ModelBundle.catalogItems($0, path: "b/catalog.jsonl") }
        }
        let good = """
            {"id":"t1","title":"Paper \\"Moon\\"","artist":"Zoë","tags":["indie"],"available":true}

            {"available":false,"title":"B-side","id":"t2","tags":[]}
            """
        #expect(try items(good) == [CatalogItem(id: "t1", title: #"Paper "Moon""#, artist: "Zoë", tags: ["indie"]),
                                    CatalogItem(id: "t2", title: "B-side", available: false)])
        #expect(try items("") == [])
        for (text, line) in [("{\"id\":\"t1\",\"title\":\"x\",\"tags\":[],\"available\":true}\n{\"id\":", 2),
                             ("not json\n", 1)] {
            #expect { try items(text) } throws: { "\($0)".contains("line \(line) is not a catalogue item") }
        }
        // Two objects on one line decode alone but not as one item per line.
        #expect(throws: DuetError.self) { try items(#"{"id":"t1","title":"x","tags":[],"available":true},{"id":"t2","title":"y","tags":[],"available":true}"#) }
    }

    /// The fast catalogue reader must agree with JSONDecoder wherever it answers, and answer for
    /// every line a bundle writes.
    @Test func catalogueLineReaderAgreesWithJSONDecoder() throws {
        func parse(_ text: String) -> CatalogItem? {
            Array(text.utf8).withUnsafeBytes { CatalogLine.parse($0) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let written = [CatalogItem(id: "t1", title: "Paper \"Moon\" \\ / tab\there\nline", artist: "Zoë & 椎名林檎 🎸", tags: ["indie", ""]),
                       CatalogItem(id: "t2", title: "\u{01}\u{1F}", artist: nil, tags: [], available: false),
                       CatalogItem(id: "t2a", title: "x", tags: ["jazz"], attributes: ["explicit": "false", "language": "sv \"quoted\""]),
                       CatalogItem(id: "t2b", title: "x", attributes: [:])]
        for item in written {
            let line = String(decoding: try encoder.encode(item), as: UTF8.self)
            #expect(parse(line) == item, "\(line)")
        }
        let lines = [
            #" { "title" : "x" , "id":"t3", "tags":["a","b"], "available":true, "artist":null } "#,
            #"{"id":"t4","title":"caf\u00e9 \u00E9\/","tags":[],"available":false}"#,
            #"{"id":"t5","title":"\ud83c\udfb8","tags":[],"available":true}"#,      // surrogate pair: left to JSONDecoder
            #"{"id":"t6","title":"x","tags":[],"available":true,"year":1999}"#,        // unknown key
            #"{"id":"t7","title":"x","tags":[],"available":1}"#,
            #"{"id":"t8","title":"x","tags":[],"available":true,"id":"t9"}"#,          // repeated key
            #"{"id":"t10","title":"x","tags":[]}"#,                                     // missing field
            #"{"id":"t11","title":"x","tags":[],"available":true} trailing"#,
            #"{"id":"t12","title":"bad \q escape","tags":[],"available":true}"#,
            "{\"id\":\"t13\",\"title\":\"raw \u{07} control\",\"tags\":[],\"available\":true}",
            #"{"id":"t15","title":"x","tags":[],"available":true,"attributes":null}"#,
            #"{"id":"t16","title":"x","tags":[],"available":true,"attributes":{ "a" : "1" , "b":"2" }}"#,
            #"{"id":"t17","title":"x","tags":[],"available":true,"attributes":{"a":1}}"#,           // not a string
            #"{"id":"t18","title":"x","tags":[],"available":true,"attributes":{"a":"1","a":"2"}}"#, // repeated attribute
        ]
        var fast = 0
        for line in lines {
            let decoded = try? JSONDecoder().decode(CatalogItem.self, from: Data(line.utf8))
            if let item = parse(line) {
                fast += 1
                #expect(item == decoded, "\(line)")
            }
        }
        #expect(fast == 4, "the two plain lines and the two with plain attributes are read without JSONDecoder")
        // Invalid UTF-8 is never read into replacement characters.
        let invalid: [UInt8] = Array(#"{"id":"t14","title":""#.utf8) + [0xFF] + Array(#"","tags":[],"available":true}"#.utf8)
        #expect(invalid.withUnsafeBytes { CatalogLine.parse($0) } == nil)
    }

    @Test func controlCheckMatchesTheUnicodeCategoryForEveryScalar() {
        var mismatches: [UInt32] = []
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            if Identifier.isControl(scalar) != (scalar.properties.generalCategory == .control) { mismatches.append(value) }
        }
        #expect(mismatches.isEmpty, "differs from the Unicode database at \(mismatches.prefix(5))")
        // The byte-level check of `problem(with:)` agrees, wherever the scalar sits in the id.
        var refused: [UInt32] = []
        for value in UInt32(0)...0xFFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let control = scalar.properties.generalCategory == .control
            for id in ["a\(Character(scalar))b", String(Character(scalar)), "é\(Character(scalar))"]
            where (Identifier.problem(with: id) != nil) != control { refused.append(value) }
        }
        #expect(refused.isEmpty, "problem(with:) disagrees with the Unicode database at \(refused.prefix(5))")
        #expect(Identifier.problem(with: "u\u{85}1")?.contains("U+85") == true)
        #expect(Identifier.problem(with: "é-ünïcode-id") == nil)
    }

    @Test func exposureNeedsAReasonWhenServedDiffersFromAssigned() throws {
        var exposure = Exposure(requestID: "r1", user: "u1", timestamp: 1, items: ["a", "b"], bundleID: "b1",
                                experiments: [ExperimentArmExposure(experimentID: "e", assigned: "treatment", served: "control")])
        #expect(throws: DuetError.self) { try exposure.validate() }
        exposure.experiments[0].fallbackReason = "treatment-bundle-unavailable"
        try exposure.validate()
        let decoded = try JSONDecoder().decode(Exposure.self, from: try JSONEncoder().encode(exposure))
        #expect(decoded == exposure)
    }

    @Test func experimentValidationNamesTheProblem() {
        let arms = [ExperimentArm(name: "control", bundleID: "a", weight: 0.5), ExperimentArm(name: "treatment", bundleID: "b", weight: 0.3)]
        let spec = ExperimentSpec(id: "e1", hypothesis: "h", arms: arms, successMetrics: ["plays"])
        do {
            try spec.validate()
            Issue.record("weights summing to 0.8 were accepted")
        } catch {
            #expect(error.description.contains("sum to 0.8"))
        }
        var single = spec
        single.arms = [arms[0]]
        #expect(throws: DuetError.self) { try single.validate() }
        #expect(ExperimentStatus.draft.canMove(to: .running))
        #expect(!ExperimentStatus.decided.canMove(to: .running))
    }

    @Test func decisionNeedsReviewerReasonAndAnalysisHash() throws {
        let hash = String(repeating: "ab", count: 32)
        var decision = Decision(experimentID: "e1", outcome: .ship, arm: "treatment", reviewer: "ana", reason: "plays up",
                                analysisHash: hash, decidedAt: 0)
        try decision.validate()
        decision.reviewer = " "
        #expect(throws: DuetError.self) { try decision.validate() }
        decision.reviewer = "ana"
        decision.analysisHash = "nope"
        #expect(throws: DuetError.self) { try decision.validate() }
        let json = try JSONEncoder().encode(DecisionOutcome.noShip)
        #expect(String(decoding: json, as: UTF8.self) == "\"no-ship\"")
    }

    @Test func manifestRefusesPathsOutsideTheBundle() throws {
        let good = BundleFile(sha256: String(repeating: "0", count: 64), bytes: 4)
        var manifest = BundleManifest(name: "m", modelKind: "als", hyperparameters: ["factors": .int(64), "alpha": .double(2)],
                                      snapshotHash: "s", createdAt: 0, counts: BundleCounts(users: 1, items: 1, interactions: 1),
                                      dimension: 64, files: ["items.f32": good])
        try manifest.validate()
        let decoded = try JSONDecoder().decode(BundleManifest.self, from: try manifest.canonicalJSON())
        #expect(decoded == manifest)
        manifest.files["../escape"] = good
        #expect(throws: DuetError.self) { try manifest.validate() }
    }

    @Test func homeResolvesFlagThenEnvironmentThenDefault() {
        #expect(DuetHome.resolve(flag: "/a", environment: ["DUET_HOME": "/b"]).root.path == "/a")
        #expect(DuetHome.resolve(flag: nil, environment: ["DUET_HOME": "/b"]).root.path == "/b")
        #expect(DuetHome.resolve(flag: nil, environment: [:]).root.lastPathComponent == "duet-home")
    }
}

@Suite struct JSONWriterTests {
    @Test func writesJSONThatFoundationReadsBack() throws {
        var json = JSONWriter()
        json.beginObject()
        json.key("text"); json.string("quote \" backslash \\ newline \n tab \t bell \u{07} é ✓")
        json.key("n"); json.int(-42)
        json.key("x"); json.number(0.125)
        json.key("bad"); json.number(.nan)
        json.key("none"); json.optionalString(nil)
        json.key("list"); json.beginArray(); json.string("a"); json.int(1); json.beginObject(); json.endObject(); json.endArray()
        json.key("plain"); json.string("Sigur Rós ✓")
        json.key("nested"); json.beginArray()
        json.beginArray(); json.int(1); json.int(2); json.endArray()
        json.beginArray(); json.beginObject(); json.key("k"); json.int(3); json.endObject(); json.endArray()
        json.endArray()
        json.endObject()
        #expect(String(decoding: json.bytes, as: UTF8.self).hasSuffix(#""plain":"Sigur Rós ✓","nested":[[1,2],[{"k":3}]]}"#))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        #expect(object["text"] as? String == "quote \" backslash \\ newline \n tab \t bell \u{07} é ✓")
        #expect((object["n"] as? NSNumber)?.intValue == -42)
        #expect((object["x"] as? NSNumber)?.doubleValue == 0.125)
        #expect(object["bad"] is NSNull && object["none"] is NSNull)
        #expect((object["list"] as? [Any])?.count == 3)
    }
}
