import DuetCore
import DuetDashboard
import DuetLab
import DuetStore
import DuetLabTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The dashboard's routes in-process: its promote and rollback are the Lab's operations, so they
/// refuse what the CLI refuses, with the same words, and record the dashboard as the actor.
@Suite struct DashboardRouterTests {
    static func form(_ fields: [String: String]) -> ByteBuffer {
        ByteBuffer(string: fields.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0.value)" }
            .joined(separator: "&"))
    }

    static let formHeaders: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    @Test func promoteAndRollbackGoThroughTheLabsOperation() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            let app = Application(router: buildDashboardRouter(pages: DashboardPages(lab: lab, eventLog: log), adminToken: "s3cret"))
            try await app.test(.router) { client in
                try await client.execute(uri: "/", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("Overview"))
                }
                let promote = Self.form(["model": fixture.first, "reason": "beats popularity"])
                try await client.execute(uri: "/actions/promote?token=wrong", method: .post, headers: Self.formHeaders, body: promote) { response in
                    #expect(response.status == .forbidden)
                }
                try await client.execute(uri: "/actions/promote?token=s3cret", method: .post, headers: Self.formHeaders,
                                         body: Self.form(["model": fixture.first])) { response in
                    #expect(response.status == .badRequest)
                }
                // No evidence yet: the Lab's refusal, word for word.
                try await client.execute(uri: "/actions/promote?token=s3cret", method: .post, headers: Self.formHeaders, body: promote) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains("has no offline evaluation"))
                }
                #expect(try await lab.registry.history().isEmpty)

                _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
                try await client.execute(uri: "/actions/promote?token=s3cret", method: .post, headers: Self.formHeaders, body: promote) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("generation 1"))
                }
                // A second model needs a ship decision against production, from the dashboard as from the CLI.
                _ = try await lab.evaluate(candidate: fixture.second, baseline: "production", resamples: 200)
                try await client.execute(uri: "/actions/promote?token=s3cret", method: .post, headers: Self.formHeaders,
                                         body: Self.form(["model": fixture.second, "reason": "looks good"])) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains("no recorded decision ships model"))
                }
                try await lab.promote(fixture.second, actor: "ana", reason: "hotfix", override: "urgent")
                try await client.execute(uri: "/actions/rollback?token=s3cret", method: .post, headers: Self.formHeaders,
                                         body: Self.form(["reason": "regression"])) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("rolled back to \(fixture.first.prefix(12))"))
                }
                try await client.execute(uri: "/history?token=s3cret", method: .get) { response in
                    #expect(String(buffer: response.body).contains("regression"))
                }
            }
            let history = try await lab.registry.history()
            #expect(history.map(\.actor) == ["dashboard", "ana", "dashboard"])
            #expect(history.map(\.action) == [.promote, .promote, .rollback])
            #expect(history[0].evaluationID != nil && history[1].overrideReason == "urgent" && history[2].to == fixture.first)
        }
    }

    @Test func promoteRefusesABundleThatNoLongerVerifies() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
            let factors = lab.bundleFolder(fixture.first).appendingPathComponent(BundleFiles.itemFactors)
            var bytes = try Data(contentsOf: factors)
            bytes[bytes.count / 2] ^= 0x01
            try bytes.write(to: factors)
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            let app = Application(router: buildDashboardRouter(pages: DashboardPages(lab: lab, eventLog: log), adminToken: "t"))
            try await app.test(.router) { client in
                try await client.execute(uri: "/actions/promote?token=t", method: .post, headers: Self.formHeaders,
                                         body: Self.form(["model": fixture.first, "reason": "r"])) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains(BundleFiles.itemFactors))
                }
            }
            #expect(try await lab.registry.history().isEmpty)
        }
    }
}
