import DuetCore
@testable import DuetDashboard
import DuetLab
import DuetStore
import DuetLabTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import Testing

/// A signed-in browser: the session cookie, the page's CSRF token and its own origin.
struct BrowserSession {
    var cookie: String
    var csrf: String

    var headers: HTTPFields {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: cookie]
        headers[.origin] = "http://localhost"
        return headers
    }
}

/// The dashboard's routes in-process: sign-in, sessions, CSRF and origin checks, and actions that
/// are the Lab's own operations, refusing what the CLI refuses, with the same words.
@Suite struct DashboardRouterTests {
    static let token = "admin-token-0123456789abcdef"

    static func form(_ fields: [String: String]) -> ByteBuffer {
        ByteBuffer(string: fields.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0.value)" }
            .joined(separator: "&"))
    }

    static func app(_ lab: Lab, token: String? = Self.token, people: Bool = false) throws -> some ApplicationProtocol {
        let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
        var security = DashboardSecurity(adminToken: token)
        security.peopleSignIn = people
        return Application(router: buildDashboardRouter(pages: DashboardPages(lab: lab, eventLog: log), security: security))
    }

    static func signIn(_ client: HTTPTestClient, as name: String? = nil, token: String = Self.token) async throws -> BrowserSession {
        var fields = ["token": token]
        if let name { fields["name"] = name }
        let cookie = try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .origin: "http://localhost"],
                                              body: form(fields)) { response in
            #expect(response.status == .seeOther && response.headers[.location] == "/")
            let setCookie = try #require(response.headers[.setCookie])
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Max-Age="))
            return String(try #require(setCookie.split(separator: ";").first))
        }
        let csrf = try await client.execute(uri: "/", method: .get, headers: [.cookie: cookie]) { response in
            let body = String(buffer: response.body)
            return try #require(body.firstMatch(of: /name="csrf" value="([0-9a-f]{64})"/)).1
        }
        return BrowserSession(cookie: cookie, csrf: String(csrf))
    }

    @Test func promoteAndRollbackGoThroughTheLabsOperation() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            try await Self.app(lab).test(.inProcess) { client in
                let session = try await Self.signIn(client)
                try await client.execute(uri: "/", method: .get, headers: [.cookie: session.cookie]) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("Overview"))
                }
                let promote = ["model": fixture.first, "reason": "beats popularity", "csrf": session.csrf]
                var noReason = promote
                noReason["reason"] = nil
                try await client.execute(uri: "/actions/promote", method: .post, headers: session.headers, body: Self.form(noReason)) { response in
                    #expect(response.status == .badRequest)
                }
                // No evidence yet: the Lab's refusal, word for word.
                try await client.execute(uri: "/actions/promote", method: .post, headers: session.headers, body: Self.form(promote)) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains("has no offline evaluation"))
                }
                #expect(try await lab.registry.history().isEmpty)

                _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
                try await client.execute(uri: "/actions/promote", method: .post, headers: session.headers, body: Self.form(promote)) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("generation 1"))
                }
                // A second model needs a ship decision against production, from the dashboard as from the CLI.
                _ = try await lab.evaluate(candidate: fixture.second, baseline: "production", resamples: 200)
                try await client.execute(uri: "/actions/promote", method: .post, headers: session.headers,
                                         body: Self.form(["model": fixture.second, "reason": "looks good", "csrf": session.csrf])) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains("no recorded decision ships model"))
                }
                try await lab.promote(fixture.second, actor: "ana", reason: "hotfix", override: "urgent")
                try await client.execute(uri: "/actions/rollback", method: .post, headers: session.headers,
                                         body: Self.form(["reason": "regression", "csrf": session.csrf])) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("rolled back to \(fixture.first.prefix(12))"))
                }
                try await client.execute(uri: "/history", method: .get, headers: [.cookie: session.cookie]) { response in
                    #expect(String(buffer: response.body).contains("regression"))
                }
            }
            let history = try await lab.registry.history()
            #expect(history.map(\.actor) == ["admin", "ana", "admin"], "the admin token signs in as admin")
            #expect(history.map(\.action) == [.promote, .promote, .rollback])
            #expect(history[0].evaluationID != nil && history[1].overrideReason == "urgent" && history[2].to == fixture.first)
        }
    }

    /// Every page needs a session once there is a token; the token goes in only through the form
    /// and never comes back out, in a page, a link or a header.
    @Test func signInIsAFormAndTheTokenNeverAppearsInAnyPageOrURL() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 100)
            try await lab.promote(fixture.first, actor: "t", reason: "setup")
            try await Self.app(lab).test(.inProcess) { client in
                for uri in ["/", "/models", "/experiments", "/?token=\(Self.token)"] {
                    try await client.execute(uri: uri, method: .get) { response in
                        #expect(response.status == .seeOther && response.headers[.location] == "/login", "\(uri) without a session")
                    }
                }
                try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .origin: "http://localhost"],
                                         body: Self.form(["token": "wrong-token-0123456789"])) { response in
                    #expect(response.status == .unauthorized)
                    #expect(response.headers[.setCookie] == nil)
                }
                try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .origin: "http://evil.example"],
                                         body: Self.form(["token": Self.token])) { response in
                    #expect(response.status == .forbidden, "a cross-site sign-in is refused")
                }
                let session = try await Self.signIn(client)
                for uri in ["/", "/models", "/history", "/evaluations", "/experiments", "/decisions", "/incidents", "/webhooks", "/memory", "/login"] {
                    try await client.execute(uri: uri, method: .get, headers: [.cookie: session.cookie]) { response in
                        #expect(response.status == .ok, "\(uri)")
                        let everything = String(buffer: response.body) + response.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
                        #expect(!everything.contains(Self.token), "\(uri) shows the admin token")
                        #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                        #expect(!String(buffer: response.body).contains("token="), "\(uri) links carry a token")
                    }
                }
            }
        }
    }

    @Test func forgedOrStaleRequestsAreRefusedBeforeAnythingChanges() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 100)
            try await Self.app(lab).test(.inProcess) { client in
                let session = try await Self.signIn(client)
                let fields = ["model": fixture.first, "reason": "forged", "csrf": session.csrf]
                var noCSRF = fields
                noCSRF["csrf"] = nil
                var wrongCSRF = fields
                wrongCSRF["csrf"] = String(repeating: "0", count: 64)
                var crossSite = session.headers
                crossSite[.origin] = "http://evil.example"
                var noOrigin = session.headers
                noOrigin[.origin] = nil
                var refererCrossSite = noOrigin
                refererCrossSite[.referer] = "http://evil.example/page"
                var noCookie = session.headers
                noCookie[.cookie] = nil
                let attempts: [(String, HTTPFields, [String: String])] = [
                    ("no CSRF token", session.headers, noCSRF), ("a wrong CSRF token", session.headers, wrongCSRF),
                    ("another site's Origin", crossSite, fields), ("neither Origin nor Referer", noOrigin, fields),
                    ("another site's Referer", refererCrossSite, fields), ("no session", noCookie, fields),
                ]
                for (what, headers, body) in attempts {
                    try await client.execute(uri: "/actions/promote", method: .post, headers: headers, body: Self.form(body)) { response in
                        #expect(response.status == .forbidden, "\(what)")
                    }
                }
                #expect(try await lab.registry.history().isEmpty, "a forged request changed production")
                // A same-origin Referer (a browser that strips Origin) passes the check.
                var sameReferer = noOrigin
                sameReferer[.referer] = "http://localhost/models"
                try await client.execute(uri: "/actions/promote", method: .post, headers: sameReferer, body: Self.form(fields)) { response in
                    #expect(response.status == .ok)
                }

                // Signing out ends the session: its cookie no longer opens a page or acts.
                try await client.execute(uri: "/logout", method: .post, headers: session.headers, body: Self.form(["csrf": session.csrf])) { response in
                    #expect(response.status == .seeOther)
                    #expect(response.headers[.setCookie]?.contains("Max-Age=0") == true)
                }
                try await client.execute(uri: "/", method: .get, headers: [.cookie: session.cookie]) { response in
                    #expect(response.status == .seeOther)
                }
                try await client.execute(uri: "/actions/rollback", method: .post, headers: session.headers,
                                         body: Self.form(["reason": "r", "csrf": session.csrf])) { response in
                    #expect(response.status == .forbidden)
                }
            }
            #expect(try await lab.registry.history().count == 1)
        }
    }

    @Test func sessionsExpire() {
        let sessions = DashboardSessions(lifetime: .seconds(60))
        let start = ContinuousClock.now
        let opened = sessions.open(as: "ana", now: start)
        #expect(sessions.session(opened.id, now: start + .seconds(59))?.csrf == opened.csrf)
        #expect(sessions.session(opened.id, now: start + .seconds(61)) == nil)
        #expect(sessions.session(opened.id, now: start) == nil, "an expired session is gone, not only hidden")
        #expect(sessions.session("guess", now: start) == nil)
    }

    /// Pages only read: viewing an experiment writes no file, and a decision names the analysis
    /// the page showed, refused if a newer one exists.
    @Test func viewingWritesNothingAndADecisionRestsOnTheAnalysisShown() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            let spec = ExperimentSpec(id: "exp", hypothesis: "h", arms: [ExperimentArm(name: "control", bundleID: fixture.first, weight: 0.5),
                                                                         ExperimentArm(name: "treatment", bundleID: fixture.second, weight: 0.5)],
                                      seed: "exp", successMetrics: ["plays_per_user"], author: "carol", approvalsRequired: 1)
            try await lab.createExperiment(spec)
            try await lab.start(experiment: "exp")
            try await LabFixture.traffic(log, spec: spec, phase: 1, users: 0..<200, at: Date().epochMillis + 5)
            let anaToken = try await lab.issueSignInToken(for: "ana")
            try await Self.app(lab, people: true).test(.inProcess) { client in
                // A wrong token for a real name, and a right token under another name, are both refused.
                for (name, token) in [("ana", "wrong-token"), ("bob", anaToken)] {
                    try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .origin: "http://localhost"],
                                             body: Self.form(["name": name, "token": token])) { response in
                        #expect(response.status == .unauthorized, "\(name)")
                    }
                }
                let session = try await Self.signIn(client, as: "ana", token: anaToken)
                let before = try Self.files(under: lab.home.root)
                try await client.execute(uri: "/experiments/exp", method: .get, headers: [.cookie: session.cookie]) { response in
                    #expect(String(buffer: response.body).contains("No stored analysis yet"))
                }
                #expect(try Self.files(under: lab.home.root) == before, "a GET wrote a file")

                try await client.execute(uri: "/actions/analyze", method: .post, headers: session.headers,
                                         body: Self.form(["experiment": "exp", "csrf": session.csrf])) { response in
                    #expect(response.status == .ok)
                }
                let shown = try await client.execute(uri: "/experiments/exp", method: .get, headers: [.cookie: session.cookie]) { response in
                    let body = String(buffer: response.body)
                    #expect(!body.contains("record decision"), "a running experiment is not decided from the page")
                    return String(try #require(body.firstMatch(of: /id="analysis-hash">([0-9a-f]{64})</)).1)
                }
                let afterAnalysis = try Self.files(under: lab.home.root)
                for _ in 0..<3 {
                    try await client.execute(uri: "/experiments/exp", method: .get, headers: [.cookie: session.cookie]) { response in
                        #expect(response.status == .ok)
                    }
                }
                #expect(try Self.files(under: lab.home.root) == afterAnalysis, "viewing an analysis wrote a file")

                // More traffic and a newer analysis: the page the reviewer saw is stale.
                try await LabFixture.traffic(log, spec: spec, phase: 1, users: 200..<260, at: Date().epochMillis + 5)
                try await Task.sleep(for: .milliseconds(20))
                let newer = try await lab.analyze(experiment: "exp", eventLog: log).hash
                #expect(newer != shown)
                // Every stored analysis is listed; an older one can be read, but not decided on.
                try await client.execute(uri: "/experiments/exp?analysis=\(shown.prefix(12))", method: .get, headers: [.cookie: session.cookie]) { response in
                    let body = String(buffer: response.body)
                    #expect(body.contains("This is an older analysis") && !body.contains("record decision"))
                    #expect(body.contains(String(newer.prefix(12))) && body.contains("\(shown.prefix(12))</code></a> (shown)"))
                }
                try await client.execute(uri: "/experiments/exp?analysis=000000000000", method: .get, headers: [.cookie: session.cookie]) { response in
                    #expect(response.status == .notFound)
                }
                try await lab.stop(experiment: "exp")
                // Stopping wrote a newer analysis still; decisions and approvals name the newest.
                let newest = try #require(try lab.latestAnalysis(of: "exp")).1
                let decide = ["experiment": "exp", "outcome": "ship", "reason": "plays up", "csrf": session.csrf]
                var stale = decide
                stale["analysis"] = shown
                try await client.execute(uri: "/actions/decide", method: .post, headers: session.headers, body: Self.form(stale)) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains("review it before deciding"))
                }
                var current = decide
                current["analysis"] = newest
                try await client.execute(uri: "/actions/decide", method: .post, headers: session.headers, body: Self.form(current)) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains("needs 1 approval of analysis \(newest.prefix(16)) from people other than its author carol; it has 0"))
                }
                // The approval is recorded under the signed-in person, never a name the form claims.
                try await client.execute(uri: "/actions/review", method: .post, headers: session.headers,
                                         body: Self.form(["experiment": "exp", "kind": "approval", "analysis": newest, "author": "mallory", "csrf": session.csrf])) { response in
                    #expect(response.status == .ok)
                }
                #expect(try await lab.reviewState(of: "exp").approvals[newest] == ["ana"])
                try await client.execute(uri: "/experiments/exp", method: .get, headers: [.cookie: session.cookie]) { response in
                    let body = String(buffer: response.body)
                    #expect(body.contains("Approved by: ana (1 of 1)") && body.contains("<span id=\"who\">ana</span>"))
                }
                try await client.execute(uri: "/actions/decide", method: .post, headers: session.headers, body: Self.form(current)) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains("by ana, approved by ana"))
                }
                _ = newer
                // Traversal through the routes that take an experiment id.
                for id in ["..%2F..%2Fetc", "..", "a%2Fb", ".hidden"] {
                    try await client.execute(uri: "/experiments/\(id)", method: .get, headers: [.cookie: session.cookie]) { response in
                        #expect(response.status == .badRequest || response.status == .notFound, "\(id)")
                    }
                }
                for id in ["../escape", "a/b", ".hidden"] {
                    try await client.execute(uri: "/actions/analyze", method: .post, headers: session.headers,
                                             body: Self.form(["experiment": id, "csrf": session.csrf])) { response in
                        #expect(response.status == .conflict)
                        #expect(String(buffer: response.body).contains("experiment id"))
                    }
                }
            }
            let decisions = try await lab.registry.decisions(experiment: "exp")
            #expect(decisions.count == 1)
            #expect(decisions.first?.decision.analysisHash == (try lab.latestAnalysis(of: "exp")?.1))
        }
    }

    @Test func promoteRefusesABundleThatNoLongerVerifies() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            _ = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 200)
            let factors = try lab.bundleFolder(fixture.first).appendingPathComponent(BundleFiles.itemFactors)
            var bytes = try Data(contentsOf: factors)
            bytes[bytes.count / 2] ^= 0x01
            try bytes.write(to: factors)
            try await Self.app(lab).test(.inProcess) { client in
                let session = try await Self.signIn(client)
                try await client.execute(uri: "/actions/promote", method: .post, headers: session.headers,
                                         body: Self.form(["model": fixture.first, "reason": "r", "csrf": session.csrf])) { response in
                    #expect(response.status == .conflict)
                    #expect(String(buffer: response.body).contains(BundleFiles.itemFactors))
                }
            }
            #expect(try await lab.registry.history().isEmpty)
        }
    }

    @Test func withoutATokenTheDashboardIsReadOnly() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            try await Self.app(fixture.lab, token: nil).test(.inProcess) { client in
                try await client.execute(uri: "/models", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(!String(buffer: response.body).contains("<form"), "a read-only dashboard offers no actions")
                }
                try await client.execute(uri: "/actions/promote", method: .post, headers: [.origin: "http://localhost"],
                                         body: Self.form(["model": fixture.first, "reason": "r"])) { response in
                    #expect(response.status == .forbidden)
                }
            }
        }
    }

    @Test func theOverviewShowsRolloutsWithTheirStageAndSteps() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let recipe = try await lab.saveRecipe(Recipe(name: "tracks", algorithm: "als", hyperparameters: ["factors": 4, "iterations": 2],
                                                         refresh: RefreshPolicy(), author: "ana", createdAt: 1))
            let snapshot = try lab.loadSplit(fixture.split).0.snapshot
            let production = try await lab.train(recipe: recipe, snapshot: snapshot, split: fixture.split, parent: nil, name: "tracks-1")
            try await lab.promote(production, actor: "ana", reason: "first", override: "test")
            let refresh = try await lab.train(recipe: recipe, snapshot: snapshot, split: fixture.split, parent: production, name: "tracks-2")
            _ = try await lab.evaluate(candidate: refresh, baseline: "production")
            let rollout = try await lab.startRollout(candidate: refresh, lane: .refresh, stages: RolloutStage.defaults,
                                                     actor: "ana", reason: "nightly <refresh>", id: "nightly")
            try await lab.control(rollout: rollout.id, .pause, actor: "bob", reason: "holding for the <weekend>")
            try await Self.app(lab, token: nil).test(.inProcess) { client in
                try await client.execute(uri: "/", method: .get) { response in
                    let page = String(buffer: response.body)
                    #expect(page.contains("<table id=\"rollouts\">"))
                    #expect(page.contains("<b>5%</b> → 25% → 100%"), "the current stage is marked")
                    #expect(page.contains("pause at 5% by bob: holding for the &lt;weekend&gt;"), "steps are listed, escaped")
                    #expect(page.contains(">paused<"))
                    #expect(!page.contains("<weekend>") && !page.contains("<refresh>"))
                }
            }
        }
    }

    static func files(under folder: URL) throws -> [String: Date] {
        let enumerator = FileManager.default.enumerator(atPath: folder.path)
        var files: [String: Date] = [:]
        while let path = enumerator?.nextObject() as? String {
            // SQLite's WAL and shared-memory files change on any read.
            guard !path.hasSuffix("-wal"), !path.hasSuffix("-shm") else { continue }
            let attributes = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(path).path)
            files[path] = attributes[.modificationDate] as? Date
        }
        return files
    }
}
