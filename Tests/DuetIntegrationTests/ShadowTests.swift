import DuetCore
import DuetLab
import DuetLabTestSupport
import DuetServe
import DuetStore
import DuetStoreTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import Testing

/// A shadowed candidate is scored beside production and logged apart: never shown, never counted as shown.
@Suite struct ShadowTests {
    struct Reply: Decodable {
        struct Item: Decodable { var id: String }
        var requestId: String
        var bundle: String
        var items: [Item]
    }

    @Test func shadowListsAreLoggedApartAndNeverCountedAsShown() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            try await fixture.lab.registry.promote(fixture.first, actor: "t", reason: "setup", evidence: .override(reason: "test"), expectedGeneration: 0)
            let (app, components, log) = try await ExperimentServingTests.serve(fixture)
            let shadow = try await fixture.lab.startShadow(candidate: fixture.second, share: 0.5, actor: "ana", id: "shadow-second")
            #expect(await components.reloader.reloadIfChanged())
            let started = Date().epochMillis
            let replies = try await app.test(.inProcess) { client in
                var replies: [Reply] = []
                for user in 0..<200 {
                    let response = try await client.execute(uri: "/v1/users/u\(user)/recommendations?n=10", method: .get)
                    #expect(response.status == .ok)
                    replies.append(try JSONDecoder().decode(Reply.self, from: Data(response.body.readableBytesView)))
                }
                return replies
            }
            #expect(replies.allSatisfy { $0.bundle == fixture.first }, "a shadow's list is never shown")
            while components.exposures.pending > 0 { await components.exposures.flush() }
            await components.shadows.flush()

            let sampled = replies.filter { ShadowExposure.sampled(requestID: $0.requestId, share: 0.5) }
            #expect(sampled.count > 60 && sampled.count < 140, "about half the requests are shadowed: \(sampled.count)")
            let logged = try await log.shadows(of: shadow.id, after: 0, limit: 1_000).map(\.shadow)
            #expect(Set(logged.map(\.requestID)) == Set(sampled.map(\.requestId)))
            #expect(logged.allSatisfy { $0.bundleID == fixture.second && $0.shownBundle == fixture.first })
            let shownByRequest = Dictionary(uniqueKeysWithValues: replies.map { ($0.requestId, $0.items.map(\.id)) })
            #expect(logged.allSatisfy { shownByRequest[$0.requestID] == $0.shown })
            #expect(logged.contains { $0.items != $0.shown }, "the candidate ranks differently")

            // Exposures hold the shown lists only, once each; the summary Serve's overview reads counts them once.
            let summary = try await log.exposureSummary(from: started - 1, until: Date().epochMillis + 1)
            #expect(summary.exposures == replies.count)
            let exposures = try await log.exposures(after: 0, matching: EventFilter(), limit: 10_000)
            #expect(exposures.count == replies.count && exposures.allSatisfy { $0.exposure.bundleID == fixture.first })

            // Plays on the first item of every shown list: the report says how many the candidate also listed.
            let now = Date().epochMillis
            _ = try await log.append(events: replies.compactMap { reply in
                reply.items.first.map { FeedbackEvent(user: "u0", item: $0.id, kind: .play, weight: 1, timestamp: now, requestID: reply.requestId) }
            })
            let report = try await fixture.lab.shadowReport(shadow.id, eventLog: log, k: 10)
            #expect(report.lists == sampled.count && report.plays == sampled.count)
            let alsoListed = logged.filter { Set($0.items).contains($0.shown[0]) }.count
            #expect(report.playsTheCandidateAlsoListed == alsoListed)
            let overlap = logged.map { Double(Set($0.shown.prefix(10)).intersection($0.items.prefix(10)).count) / 10 }.reduce(0, +) / Double(logged.count)
            #expect(abs(report.overlapAtK - overlap) < 1e-12)
            #expect(report.rankCorrelation.map { (-1...1).contains($0) } ?? false)

            // Stopped, nothing more is shadowed.
            try await fixture.lab.registry.stop(experiment: shadow.id)
            #expect(await components.reloader.reloadIfChanged())
            _ = try await app.test(.inProcess) { client in try await client.execute(uri: "/v1/users/u1/recommendations?n=10", method: .get) }
            await components.shadows.flush()
            #expect(try await log.shadows(of: shadow.id, after: 0, limit: 1_000).count == logged.count)
        }
    }

    @Test func kendallTauOfSharedItems() {
        #expect(Lab.kendallTauForTesting(["a", "b", "c"], ["a", "b", "c"]) == 1)
        #expect(Lab.kendallTauForTesting(["a", "b", "c"], ["c", "b", "a"]) == -1)
        #expect(Lab.kendallTauForTesting(["a", "x", "b"], ["b", "y", "a"]) == -1)
        #expect(Lab.kendallTauForTesting(["a", "b"], ["a", "z"]) == nil)
    }
}
