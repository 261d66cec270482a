import DuetServe
import Testing

@Suite struct IngestBudgetTests {
    @Test func bodiesAreAdmittedWithinBothBoundsAndALoneBigOneAlways() {
        let budget = IngestCounter()
        let mib = 1 << 20
        // A lone body larger than the byte budget is still taken: refusing it would refuse it forever.
        #expect(budget.enter(reserving: 4 * mib, maxRequests: 8, maxBytes: 3 * mib))
        #expect(!budget.enter(reserving: 1, maxRequests: 8, maxBytes: 3 * mib), "nothing more fits beside it")
        #expect(budget.current == 1 && budget.currentBytes == 4 * mib, "a refused request reserves nothing")
        budget.leave(releasing: 4 * mib)

        // Small batches pass until the request bound; big ones stop at the byte bound.
        for _ in 0..<8 { #expect(budget.enter(reserving: 10_000, maxRequests: 8, maxBytes: 3 * mib)) }
        #expect(!budget.enter(reserving: 10_000, maxRequests: 8, maxBytes: 3 * mib))
        for _ in 0..<8 { budget.leave(releasing: 10_000) }
        #expect(budget.enter(reserving: 2 * mib, maxRequests: 8, maxBytes: 3 * mib))
        #expect(!budget.enter(reserving: 2 * mib, maxRequests: 8, maxBytes: 3 * mib))
        #expect(budget.enter(reserving: mib, maxRequests: 8, maxBytes: 3 * mib))
        budget.leave(releasing: 2 * mib)
        budget.leave(releasing: mib)
        #expect(budget.current == 0 && budget.currentBytes == 0)
    }
}
