import DuetCore
import DuetLab
import DuetTestSupport
import Foundation
import Testing

/// Generated files where every line is valid or broken by construction: with --skip-bad-rows the
/// importers read all of them, skip exactly the broken ones (counted), and never crash.
@Suite struct HostileImportTests {
    static let badTimes = ["1e19", "-1e17", "1e16", "99999999999999999999", "9223372036854775807", "-5", "NaN", "Infinity",
                           "10000-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T25:00:00Z", "", "0x10", "1e308"]
    static let badWeights = ["NaN", "-1", "1e39", "Infinity", "x", "", "--1"]

    @Test func jsonLinesAndCSVSkipExactlyTheBrokenRows() async throws {
        try await withScratchFolder { folder in
            var rng = SplitMix64(seed: 7)
            var jsonl = "", csv = "user,item,weight,time\n"
            var broken = (json: 0, csv: 0), rows = 20_000
            for row in 0..<rows {
                let valid = rng.below(3) > 0
                if valid {
                    jsonl += "{\"user\":\"u\(row % 97)\",\"item\":\"t\(row % 501)\",\"weight\":\(rng.below(9) + 1),\"timestamp\":\(1_700_000_000 + row)}\n"
                    csv += "u\(row % 97),t\(row % 501),\(rng.below(9) + 1),\(1_700_000_000 + row)\n"
                    continue
                }
                broken.json += 1
                broken.csv += 1
                let time = Self.badTimes[rng.below(Self.badTimes.count)], weight = Self.badWeights[rng.below(Self.badWeights.count)]
                switch rng.below(5) {
                case 0:
                    jsonl += "{\"user\":\"u\",\"item\":\"t\",\"timestamp\":\"\(time)\"}\n"
                    csv += "u,t,1,\(time)\n"
                case 1:
                    jsonl += "{\"user\":\"u\",\"item\":\"t\",\"timestamp\":\(time.isEmpty ? "1e400" : time)}\n"
                    csv += "u,t,\(weight),1700000000\n"
                case 2:
                    jsonl += "{\"user\":\"u\",\"item\":\"t\",\"weight\":\"\(weight)\",\"timestamp\":1}\n"
                    csv += "u,t\n"
                case 3:
                    jsonl += "{\"user\":\"u\",\"item\":\"t\",\"timestamp\":17000000" + "\n"
                    csv += ",t,1,1700000000\n"
                default:
                    jsonl += "[\(String(repeating: "[", count: 5_000))\n"
                    csv += "u,t,1,1700000000,extra\n"
                }
            }
            let jsonFile = try writeFile(jsonl, named: "events.jsonl", in: folder)
            let csvFile = try writeFile(csv, named: "events.csv", in: folder)
            for (source, expectedSkips) in [(ImportSource.jsonl(file: jsonFile), broken.json),
                                           (.table(file: csvFile, mapping: ColumnMapping(user: "user", item: "item", weight: "weight", time: "time")), broken.csv)] {
                var kept = 0
                let tally = try Importer(source: source, skipBadRows: true).read { row in
                    #expect(TimestampParser.validRange.contains(row.timestamp) && row.weight.isFinite)
                    kept += 1
                }
                #expect(tally.rowsRead == rows, "\(source.formatName)")
                #expect(tally.rowsSkipped == expectedSkips, "\(source.formatName): \(tally.skippedExamples.prefix(3))")
                #expect(kept == rows - expectedSkips, "\(source.formatName)")
            }
        }
    }

    @Test(arguments: ["1e19", "-1e17", "\"1e16\"", "1e308", "\"99999999999999999999\"", "\"NaN\"", "\"2025-02-29T00:00:00Z\""])
    func outOfRangeTimestampsAreRefusedNamingTheField(timestamp: String) throws {
        let body = Data("{\"user\":\"u\",\"item\":\"t\",\"timestamp\":\(timestamp)}".utf8)
        #expect { try JSONDecoder().decode(FeedbackEvent.self, from: body) } throws: { "\($0)".contains("timestamp") }
    }

    @Test func validTimesStillParse() {
        #expect(TimestampParser.iso8601("2024-02-29T12:00:00Z") == 1_709_208_000_000)
        #expect(TimestampParser.iso8601("2026-01-01T10:00:00+02:00") == 1_767_254_400_000)
        #expect(TimestampParser.epochMillis("1700000000") == 1_700_000_000_000)
        #expect(TimestampParser.epochMillis("1700000000123") == 1_700_000_000_123)
        #expect(TimestampParser.epochMillis(number: 1.5) == 1_500)
        // RFC 3339 offsets up to ±23:59, past Foundation's ±18:00, found by Schemathesis.
        #expect(TimestampParser.iso8601("2026-01-01T20:42:00+20:42") == 1_767_225_600_000)
        #expect(TimestampParser.iso8601("2025-12-31T10:30:00.5-13:30") == 1_767_225_600_500)
        #expect(TimestampParser.iso8601("2026-01-01T00:00:00+24:00") == nil)
        #expect(TimestampParser.iso8601("1970-01-01T00:30:00+01:00") == nil, "before 1970 once the offset is applied")
    }

    @Test(arguments: ["2.2250738585072014e-308", "3.402823466385289e38", "-1", "1e39"])
    func weightsAreReadAsNumbersAndCheckedNamingTheField(weight: String) throws {
        let body = Data("{\"user\":\"u\",\"item\":\"t\",\"timestamp\":0,\"weight\":\(weight)}".utf8)
        // The smallest normal Double is no reason to refuse: it reads as 0.
        if weight.hasPrefix("2.2") {
            #expect(try JSONDecoder().decode(FeedbackEvent.self, from: body).weight == 0)
        } else {
            #expect { try JSONDecoder().decode(FeedbackEvent.self, from: body) } throws: { "\($0)".contains("weight") }
        }
    }
}
