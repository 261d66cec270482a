@testable import DuetServe
import Foundation
import Hummingbird
import Testing

/// An oversize batch is refused from its separators, before any event is decoded; only separators
/// of the top-level array count.
struct EventBatchLimitTests {
    static func event(_ user: String) -> String { #"{"user":"\#(user)","item":"t1","timestamp":1700000000}"# }

    static func batch(_ users: [String]) -> Data { Data(("[" + users.map(event).joined(separator: ",") + "]").utf8) }

    @Test func separatorsOfTheTopLevelArrayAloneCount() {
        let limit = 3
        #expect(!arrayHoldsMoreElements(Self.batch(["a", "b", "c"]), than: limit))
        #expect(arrayHoldsMoreElements(Self.batch(["a", "b", "c", "d"]), than: limit))
        // Commas and brackets inside strings, escaped quotes included, and inside nested values do not count.
        #expect(!arrayHoldsMoreElements(Self.batch([#"a,b,c,d"#, #"x\",\",]"#, "[,,,]"]), than: limit))
        #expect(!arrayHoldsMoreElements(Data(#"[{"user":"u","extra":[1,2,3,4,5]},{},{}]"#.utf8), than: limit))
        // Not an array (the envelope is decoded and counted after), or a top-level array that ends
        // before a stray tail: the decoder names the problem.
        #expect(!arrayHoldsMoreElements(Data(#"{"events":[1,2,3,4,5]}"#.utf8), than: limit))
        #expect(!arrayHoldsMoreElements(Data("[1,2,3],4,5,6".utf8), than: limit))
        #expect(arrayHoldsMoreElements(Data("  \n[1,2,3,4".utf8), than: limit))
        #expect(!arrayHoldsMoreElements(Data(), than: limit))
    }

    @Test func anOversizeBatchIsRefusedAs413AndAnEnvelopeIsCountedAfterDecoding() throws {
        let limit = 2
        for body in [Self.batch(["a", "b", "c"]), Data(#"{"events":[\#(Self.event("a")),\#(Self.event("b")),\#(Self.event("c"))]}"#.utf8)] {
            do {
                _ = try decodeEvents(body, limit: limit)
                Issue.record("a batch of 3 passed a limit of 2")
            } catch let error as HTTPError {
                #expect(error.status == .contentTooLarge)
                #expect(error.body?.contains("the limit is 2") == true, "\(error.body ?? "")")
            }
        }
        #expect(try decodeEvents(Self.batch(["a,b", "c"]), limit: limit).map(\.user) == ["a,b", "c"])
    }
}
