import DuetCore
import DuetLab
import DuetLabTestSupport
import DuetServe
import DuetStore
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import Logging
import Testing

/// Known users' precomputed lists must answer exactly what the scan answers: the same items, scores
/// and index, whatever the request excludes and whatever the user just consumed, including when
/// those leave fewer than n items in the list (the request then scans).
@Suite struct PrecomputedListsTests {
    /// A second Serve over the fixture's home with other list settings, and no HTTP.
    static func serve(_ fixture: ServeFixture, maxBytes: Int, depth: Int = 40) async throws -> ServeComponents {
        var configuration = ServeSettings(home: fixture.lab.lab.home)
        configuration.precomputedListsMaxBytes = maxBytes
        configuration.precomputedListDepth = depth
        let source = try SQLiteServingSource(path: fixture.lab.lab.home.registryPath.path)
        return try await buildServe(configuration: configuration, source: source, eventSink: fixture.eventLog, prometheus: nil,
                                    logger: Logger(label: "test")).1
    }

    @Test(arguments: [40, 1_000])
    func precomputedListsAnswerWhatTheScanAnswers(depth: Int) async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let lists = try await Self.serve(fixture, maxBytes: 64 << 20, depth: depth)
            let scans = try await Self.serve(fixture, maxBytes: 0)
            let production = try #require(lists.store.current.production)
            let bundle = production.bundle
            #expect(production.precomputedUsers == bundle.userCount)
            #expect(try #require(scans.store.current.production).precomputedUsers == 0)
            // At depth 1,000 every list holds all the user's unconsumed items: lists shorter than their depth.
            if depth > 40 { #expect(bundle.itemCount < depth) }
            var compared = 0, shortened = 0
            for userIndex in stride(from: 0, to: bundle.userCount, by: 7) {
                let user = bundle.userIDs[userIndex]
                let full = try scans.recommender.recommend(user: user, n: 45, exclude: [], context: nil).itemIDs
                guard full.count == 45 else { continue }
                let cases: [(n: Int, exclude: [String])] = [
                    (1, []), (20, []), (40, []), (41, []),
                    (20, Array(full.prefix(3))),
                    // 30 of the list's first 35 gone: only 10 of a 40-deep list remain, short of 20.
                    (20, Array(full.prefix(35).enumerated().filter { $0.offset % 7 != 0 }.map(\.element).prefix(30))),
                    (5, ["not-an-item", full[2]]),
                ]
                for (n, exclude) in cases {
                    let answer = try lists.recommender.recommend(user: user, n: n, exclude: exclude, context: nil)
                    let expected = try scans.recommender.recommend(user: user, n: n, exclude: exclude, context: nil)
                    #expect(answer.itemIDs == expected.itemIDs, "user \(user), n \(n), \(exclude.count) excluded")
                    #expect(answer.items.map(\.score) == expected.items.map(\.score))
                    #expect(answer.index == expected.index && answer.fallback == expected.fallback)
                    #expect(answer.itemIDs.count == n && Set(answer.itemIDs).isDisjoint(with: exclude))
                    compared += 1
                    if exclude.count >= 30 { shortened += 1 }
                }
            }
            #expect(compared >= 200 && shortened >= 30, "compared \(compared), shortened \(shortened)")
        }
    }

    /// What a user just played is dropped from their precomputed list as it is from a scan.
    @Test func consumptionSinceTheBundleIsDroppedFromTheList() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            let scans = try await Self.serve(fixture, maxBytes: 0)
            let bundle = try #require(fixture.components.store.current.production).bundle
            #expect(try #require(fixture.components.store.current.production).precomputedUsers == bundle.userCount)
            let user = try fixture.knownUser()
            let before = try fixture.components.recommender.recommend(user: user, n: 20, exclude: [], context: nil).itemIDs
            let played = [before[0], before[4], before[19]]
            let events = played.map { #"{"user":"\#(user)","item":"\#($0)","kind":"play","timestamp":1767225600}"# }
            try await fixture.app.test(.inProcess) { client in
                try await client.execute(uri: "/v1/events", method: .post, body: ByteBuffer(string: "[\(events.joined(separator: ","))]")) { response in
                    #expect(response.status == .accepted)
                }
            }
            let after = try fixture.components.recommender.recommend(user: user, n: 20, exclude: [], context: nil)
            let expected = try scans.recommender.recommend(user: user, n: 20, exclude: played, context: nil)
            #expect(after.itemIDs == expected.itemIDs)
            #expect(after.items.map(\.score) == expected.items.map(\.score))
            #expect(Set(after.itemIDs).isDisjoint(with: played))
        }
    }
}
