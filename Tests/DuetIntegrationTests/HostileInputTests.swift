import DuetCore
import DuetServe
import DuetLabTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import NIOCore
import Testing

/// Bodies and URLs built to break a decoder: wrong types, numbers at and past every limit, NaN and
/// Infinity spelled as text, deep nesting, huge strings and arrays, invalid UTF-8, truncated JSON.
/// Seeded, so a failure replays.
struct HostileInput {
    var rng: SplitMix64

    mutating func pick<T>(_ values: [T]) -> T { values[rng.below(values.count)] }

    static let numbers = ["0", "-0", "1", "-1", "1e19", "-1e17", "1e308", "-1e308", "1e-320", "9223372036854775807",
                          "9223372036854775808", "-9223372036854775809", "1.7e12", "253402300799999", "253402300800000",
                          "18446744073709551616", "123456789012345678901234567890", "3.4028235e38", "3.5e38", "0.000001"]
    static let texts = ["\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"1e16\"", "\"1e19\"", "\"-1e17\"", "\"\"", "\"2026-11-30T10:00:00Z\"",
                        "\"2026-13-45T99:99:99Z\"", "\"10000-01-01T00:00:00Z\"", "\"  12  \"", "\"0x10\"", "\"\\u0000\"", "\"\\ud800\""]
    static let others = ["null", "true", "false", "[]", "{}", "[1,2]", "{\"a\":1}"]

    mutating func scalar() -> String {
        switch rng.below(3) {
        case 0: pick(Self.numbers)
        case 1: pick(Self.texts)
        default: pick(Self.others)
        }
    }

    mutating func identifier() -> String {
        switch rng.below(8) {
        case 0: return "\"\""
        case 1: return "\"" + String(repeating: "x", count: 1 + rng.below(600)) + "\""
        case 2: return "\"a\\u0000b\""
        case 3: return "\"tab\\there\""
        case 4: return "\"zoë-🎵\""
        case 5: return scalar()
        default: return "\"u\(rng.below(1_000))\""
        }
    }

    mutating func event() -> String {
        var fields: [String] = []
        if rng.below(10) > 0 { fields.append("\"user\":\(identifier())") }
        if rng.below(10) > 0 { fields.append("\"item\":\(identifier())") }
        if rng.below(2) == 0 { fields.append("\"kind\":\(pick(["\"play\"", "\"skip\"", "\"PLAY\"", "\"\"", "1", "null", "\"a b\""]))") }
        if rng.below(2) == 0 { fields.append("\"weight\":\(scalar())") }
        if rng.below(10) > 0 { fields.append("\"timestamp\":\(scalar())") }
        if rng.below(4) == 0 { fields.append("\"requestId\":\(identifier())") }
        if rng.below(8) == 0 { fields.append("\"extra\":\(scalar())") }
        return "{" + fields.shuffled(using: &rng).joined(separator: ",") + "}"
    }

    mutating func batch() -> String {
        let events = (0..<(1 + rng.below(4))).map { _ in event() }.joined(separator: ",")
        return rng.below(2) == 0 ? "[\(events)]" : "{\"events\":[\(events)]}"
    }

    mutating func validBatch() -> String {
        "[" + (0..<(1 + rng.below(5))).map { _ in
            "{\"user\":\"u\(rng.below(300))\",\"item\":\"t\(rng.below(600))\",\"weight\":\(rng.below(5) + 1),\"timestamp\":\(1_700_000_000 + rng.below(1_000_000))}"
        }.joined(separator: ",") + "]"
    }

    /// A small body: most are broken one way or another, one in twenty is a valid batch.
    mutating func body() -> [UInt8] {
        if rng.below(20) == 0 { return Array(validBatch().utf8) }
        switch rng.below(8) {
        case 0, 1, 2: return Array(batch().utf8)
        case 3:  // truncated
            let text = Array(batch().utf8)
            return Array(text.prefix(rng.below(text.count)))
        case 4:  // invalid UTF-8 spliced in
            var text = Array(batch().utf8)
            text.insert(pick([0xFF, 0xC0, 0xED, 0x80, 0xF8]), at: rng.below(text.count + 1))
            return text
        case 5:  // deep nesting
            let depth = pick([100, 1_000, 10_000])
            return Array((String(repeating: "[", count: depth) + String(repeating: "]", count: rng.below(2) == 0 ? depth : depth / 2)).utf8)
        case 6:  // wrong top-level types
            return Array(pick(["", " ", "null", "42", "\"events\"", "{\"events\":null}", "{\"events\":{}}", "[null]", "[[]]", "{}", "[]"]).utf8)
        default:  // random bytes
            return (0..<rng.below(200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
    }

    /// Many events: past the batch limit (all valid), or within it with one wrong among them.
    mutating func bigArray() -> [UInt8] {
        let count = pick([10_001, 20_000, 3_000])
        let wrong = count == 3_000 ? rng.below(count) : -1
        return Array(("[" + (0..<count).map { $0 == wrong ? "1" : "{\"user\":\"u\",\"item\":\"i\",\"timestamp\":1700000000}" }
            .joined(separator: ",") + "]").utf8)
    }

    /// A 10 MB string, past the 4 MiB body limit.
    static let tenMegabytes = Array(("[{\"user\":\"" + String(repeating: "u", count: 10 << 20) + "\",\"item\":\"i\",\"timestamp\":1}]").utf8)

    mutating func query() -> String {
        let n = pick(["", "n=5", "n=0", "n=-1", "n=1001", "n=1e308", "n=NaN", "n=99999999999999999999", "n=%00", "n="])
        let exclude = pick(["", "exclude=", "exclude=,,,", "exclude=a%00b", "exclude=" + String(repeating: "x,", count: 1_200)])
        let index = pick(["", "index=exact", "index=nope", "index=%FF"])
        return [n, exclude, index].filter { !$0.isEmpty }.joined(separator: "&")
    }

    mutating func path() -> String {
        let id = pick(["u1", "t1", "%00", "%FF%FE", "..", "a%2Fb", String(repeating: "z", count: 300), "%", "%zz", "🎵"])
        return rng.below(2) == 0 ? "/v1/users/\(id)/recommendations?\(query())" : "/v1/items/\(id)/similar?\(query())"
    }
}

@Suite(.serialized) struct HostileInputTests {
    @Test func oneHundredThousandHostileRequestsGetOnly2xxOr4xx() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            // Two concurrent senders, rounds dealt alternately, so the run uses both cores.
            let workers = 2
            let (statuses, huge) = try await fixture.app.test(.inProcess) { client in
                try await withThrowingTaskGroup(of: ([Int: Int], Int).self) { group in
                    for worker in 0..<workers {
                        group.addTask {
                            var input = HostileInput(rng: SplitMix64(seed: 20261130 + UInt64(worker)))
                            var statuses: [Int: Int] = [:]
                            var huge = 0
                            for round in stride(from: worker, to: 100_000, by: workers) {
                                if round % 10 == 9 {
                                    let status = try await client.execute(uri: input.path(), method: .get).status
                                    statuses[Int(status.code), default: 0] += 1
                                    continue
                                }
                                // Few big ones, so the run stays short: four 10 MB bodies, two hundred huge arrays.
                                let body = round % 25_000 == 0 ? HostileInput.tenMegabytes : round % 500 == 1 ? input.bigArray() : input.body()
                                if body.count > 4 << 20 { huge += 1 }
                                let status = try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                                                      body: ByteBuffer(bytes: body)).status
                                statuses[Int(status.code), default: 0] += 1
                                if !(200..<500).contains(Int(status.code)) {
                                    Issue.record("status \(status.code) for body \(String(decoding: body.prefix(200), as: UTF8.self))")
                                }
                            }
                            return (statuses, huge)
                        }
                    }
                    var statuses: [Int: Int] = [:]
                    var huge = 0
                    for try await (part, partHuge) in group {
                        statuses.merge(part, uniquingKeysWith: +)
                        huge += partHuge
                    }
                    return (statuses, huge)
                }
            }
            #expect(statuses.values.reduce(0, +) == 100_000)
            #expect(statuses.keys.allSatisfy { (200..<500).contains($0) }, "\(statuses.sorted { $0.key < $1.key })")
            // The run must exercise both answers: stored batches and refusals, oversize ones included.
            #expect(statuses[202, default: 0] > 2_000 && statuses[400, default: 0] > 30_000 && statuses[413, default: 0] > 100,
                    "\(statuses.sorted { $0.key < $1.key })")
            #expect(huge == 4)
            // Serve still answers afterwards.
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: "/v1/users/\(try fixture.knownUser())/recommendations?n=3", method: .get) { #expect($0.status == .ok) }
            }
        }
    }
}
