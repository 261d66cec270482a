import DuetCore
public import DuetLab
import DuetStore
import Foundation
import HTTPTypes
public import Hummingbird
import Synchronization

/// How the dashboard authenticates. Without an admin token or people sign-in it is read-only and
/// open; with either, every page needs a session opened through the sign-in form: a registered
/// person with their token (their actions carry their name), or the admin token (as "admin").
public struct DashboardSecurity: Sendable {
    public var adminToken: String?
    /// Registered people sign in with their own tokens (`duet lab people token`).
    public var peopleSignIn = false
    public var signInRequired: Bool { adminToken != nil || peopleSignIn }
    /// How long a session lasts after sign-in.
    public var sessionLifetime: Duration = .seconds(8 * 3_600)
    /// Adds `Secure` to the session cookie: set it when the dashboard is reached over HTTPS.
    public var secureCookie = false

    public init(adminToken: String?) { self.adminToken = adminToken }
}

/// Signed-in sessions, in memory: a restart signs everyone out. Each has its own CSRF token.
public final class DashboardSessions: Sendable {
    struct Session {
        let csrf: String
        let person: String
        let expires: ContinuousClock.Instant
    }

    static let cookieName = "duet_session"
    /// Bounds memory whatever a client does; the oldest session goes first.
    static let maxSessions = 1_000
    private let sessions = Mutex<[String: Session]>([:])
    let lifetime: Duration

    public init(lifetime: Duration) { self.lifetime = lifetime }

    func open(as person: String, now: ContinuousClock.Instant = .now) -> (id: String, csrf: String) {
        let id = Secrets.randomHex(bytes: 32), csrf = Secrets.randomHex(bytes: 32)
        sessions.withLock { sessions in
            sessions = sessions.filter { $0.value.expires > now }
            if sessions.count >= Self.maxSessions, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires })?.key {
                sessions[oldest] = nil
            }
            sessions[id] = Session(csrf: csrf, person: person, expires: now + lifetime)
        }
        return (id, csrf)
    }

    func session(_ id: String?, now: ContinuousClock.Instant = .now) -> Session? {
        guard let id else { return nil }
        return sessions.withLock { sessions in
            guard let session = sessions[id] else { return nil }
            if session.expires <= now {
                sessions[id] = nil
                return nil
            }
            return session
        }
    }

    func close(_ id: String?) {
        guard let id else { return }
        sessions.withLock { $0[id] = nil }
    }
}

/// The review dashboard's routes. Pages only read; the actions (analyze, promote, rollback,
/// decide) are POSTs that need a session, its CSRF token, a same-origin Origin or Referer, and a
/// reason, and go through the same Lab operations as the CLI.
public func buildDashboardRouter(pages: DashboardPages, security: DashboardSecurity) -> Router<BasicRequestContext> {
    let router = Router()
    router.middlewares.add(SecurityHeadersMiddleware())
    let sessions = DashboardSessions(lifetime: security.sessionLifetime)

    @Sendable func html(_ page: HTML, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page.rendered)))
    }
    @Sendable func message(_ title: String, _ text: String, status: HTTPResponse.Status) -> Response {
        html("<!doctype html><meta charset=\"utf-8\"><title>\(title)</title><h1>\(title)</h1><p>\(text)</p><p><a href=\"/\">back</a></p>", status: status)
    }
    @Sendable func redirect(_ location: String, cookie: String? = nil) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: .seeOther, headers: headers)
    }
    @Sendable func sessionID(_ request: Request) -> String? {
        for field in request.headers[values: .cookie] {
            for pair in field.split(separator: ";") {
                let parts = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0] == DashboardSessions.cookieName { return String(parts[1]) }
            }
        }
        return nil
    }
    @Sendable func viewer(_ request: Request) -> Viewer? {
        guard security.signInRequired else { return .readOnly }
        return sessions.session(sessionID(request)).map { Viewer(csrf: $0.csrf, signedIn: true, person: $0.person) }
    }
    @Sendable func cookie(_ value: String, maxAge: Int) -> String {
        "\(DashboardSessions.cookieName)=\(value); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)\(security.secureCookie ? "; Secure" : "")"
    }

    func render(_ body: @escaping @Sendable (Request, Viewer) async throws -> HTML) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, _ in
            guard let viewer = viewer(request) else { return redirect("/login") }
            do { return html(try await body(request, viewer)) } catch let error as DuetError {
                let status: HTTPResponse.Status = if case .invalidValue = error { .badRequest } else { .notFound }
                return message("Cannot show this", "\(error)", status: status)
            } catch {
                return message("Cannot show this", "\(error)", status: .internalServerError)
            }
        }
    }
    router.get("/", use: render { _, viewer in try await pages.overview(viewer) })
    router.get("models", use: render { _, viewer in try await pages.models(viewer) })
    router.get("history", use: render { _, viewer in try await pages.history(viewer) })
    router.get("evaluations", use: render { _, viewer in try await pages.evaluations(viewer) })
    router.get("experiments", use: render { _, viewer in try await pages.experiments(viewer) })
    router.get("experiments/:id", use: render { request, viewer in
        try await pages.experiment(request.uri.path.split(separator: "/").last.map(String.init)?.removingPercentEncoding ?? "", viewer,
                                   analysis: request.uri.queryParameters.get("analysis"))
    })
    router.get("decisions", use: render { _, viewer in try await pages.decisions(viewer) })
    router.get("incidents", use: render { _, viewer in try await pages.incidents(viewer) })
    router.get("webhooks", use: render { _, viewer in try await pages.webhooks(viewer) })
    router.get("memory", use: render { request, viewer in
        let query = request.uri.queryParameters
        return try await pages.memory(viewer, metric: query.get("metric"), model: query.get("model"), owner: query.get("owner"))
    })
    @Sendable func memoryJSON(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard viewer(request) != nil else { return redirect("/login") }
        let query = request.uri.queryParameters
        let entries = try await pages.lab.experimentMemory(metric: query.get("metric"), model: query.get("model"), owner: query.get("owner"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(entries))))
    }
    router.get("memory.json", use: memoryJSON)
    router.get("experiments.json", use: memoryJSON)

    router.get("login") { _, _ in html(pages.login(failed: false)) }
    router.post("login") { request, _ in
        guard security.signInRequired else { return message("Read-only", "This dashboard has no sign-in.", status: .forbidden) }
        if let refusal = sameOriginRefusal(request) { return message("Forbidden", refusal, status: .forbidden) }
        let form = parseForm(String(buffer: try await request.body.collect(upTo: 16 * 1_024)))
        let name = form["name"]?.trimmingCharacters(in: .whitespaces) ?? ""
        guard let presented = form["token"] else { return html(pages.login(failed: true), status: .unauthorized) }
        let person: String
        if name.isEmpty || name == "admin" {
            guard let adminToken = security.adminToken, Secrets.matches(presented, adminToken) else { return html(pages.login(failed: true), status: .unauthorized) }
            person = "admin"
        } else {
            guard security.peopleSignIn, Identifier.fileSafeProblem(with: name) == nil,
                  let known = try await pages.lab.person(signingInAs: name, token: presented) else { return html(pages.login(failed: true), status: .unauthorized) }
            person = known.name
        }
        let opened = sessions.open(as: person)
        return redirect("/", cookie: cookie(opened.id, maxAge: Int(security.sessionLifetime.components.seconds)))
    }

    /// A state change: a session, its CSRF token and a same-origin request, or 403 before anything is read.
    func action(reason needsReason: Bool = true,
                _ perform: @escaping @Sendable ([String: String], String) async throws -> (String, [String])) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, _ in
            guard security.signInRequired else { return message("Forbidden", "This dashboard is read-only: it has no sign-in.", status: .forbidden) }
            guard let session = sessions.session(sessionID(request)) else { return message("Forbidden", "Sign in first.", status: .forbidden) }
            if let refusal = sameOriginRefusal(request) { return message("Forbidden", refusal, status: .forbidden) }
            let form = parseForm(String(buffer: try await request.body.collect(upTo: 64 * 1_024)))
            guard let csrf = form["csrf"], Secrets.matches(csrf, session.csrf) else {
                return message("Forbidden", "The form's CSRF token is missing or stale; reload the page and try again.", status: .forbidden)
            }
            if needsReason, form["reason"]?.trimmingCharacters(in: .whitespaces).isEmpty ?? true {
                return message("A reason is required", "Every action records why it was taken.", status: .badRequest)
            }
            do {
                let (text, next) = try await perform(form, session.person)
                return html("<!doctype html><meta charset=\"utf-8\"><title>Done</title><p id=\"result\">\(text)</p><p><a href=\"\(path: next)\">continue</a></p>")
            } catch {
                return message("Refused", "\(error)", status: .conflict)
            }
        }
    }
    router.post("actions/analyze", use: action(reason: false) { form, _ in
        guard let experiment = form["experiment"] else { throw DuetError.invalidValue(field: "experiment", reason: "missing") }
        let stored = try await pages.lab.analyze(experiment: experiment, eventLog: pages.eventLog)
        return ("analysis \(stored.hash.prefix(12)) stored", ["experiments", experiment])
    })
    router.post("actions/promote", use: action { form, person in
        guard let model = form["model"] else { throw DuetError.invalidValue(field: "model", reason: "missing") }
        let change = try await pages.lab.promote(model, actor: person, reason: form["reason"]!)
        return ("generation \(change.generation): production is now \(change.to.prefix(12))", ["history"])
    })
    router.post("actions/rollback", use: action { form, person in
        let change = try await pages.lab.rollback(actor: person, reason: form["reason"]!)
        return ("generation \(change.generation): rolled back to \(change.to.prefix(12))", ["history"])
    })
    router.post("actions/decide", use: action { form, person in
        guard let experiment = form["experiment"], let outcome = form["outcome"].flatMap(DecisionOutcome.init(rawValue:)),
              let shown = form["analysis"], !shown.isEmpty else {
            throw DuetError.invalidValue(field: "decision", reason: "experiment, outcome and the analysis shown are required")
        }
        let override = form["override"].flatMap { $0.isEmpty ? nil : $0 }
        let (id, decision) = try await pages.lab.decide(experiment: experiment, outcome: outcome, arm: nil, reviewer: person,
                                                        reason: form["reason"]!, overrideReason: override, shown: shown)
        let approvers = decision.approvers.isEmpty ? "" : ", approved by \(decision.approvers.joined(separator: ", "))"
        return ("decision #\(id) recorded: \(decision.outcome.rawValue) by \(decision.reviewer)\(approvers)", ["decisions"])
    })
    router.post("actions/review", use: action(reason: false) { form, person in
        guard let experiment = form["experiment"], let kind = form["kind"].flatMap(ReviewKind.init(rawValue:)) else {
            throw DuetError.invalidValue(field: "review", reason: "experiment and kind (comment, objection, approval, resolution, overrule) are required")
        }
        let text = form["text"] ?? ""
        let parentText = form["parent"]?.trimmingCharacters(in: .whitespaces) ?? ""
        var parent: Int64?
        if !parentText.isEmpty {
            guard let number = Int64(parentText.hasPrefix("#") ? String(parentText.dropFirst()) : parentText) else {
                throw DuetError.invalidValue(field: "parent", reason: "'\(parentText)' is not an entry number")
            }
            parent = number
        }
        let lab = pages.lab
        let entry: ReviewEntry
        switch kind {
        case .comment: entry = try await lab.comment(on: experiment, as: person, text: text, replyingTo: parent)
        case .objection: entry = try await lab.object(to: experiment, as: person, text: text)
        case .approval: entry = try await lab.approve(experiment, as: person, analysis: form["analysis"] ?? "", text: text)
        case .resolution, .overrule:
            guard let parent else { throw DuetError.invalidValue(field: "parent", reason: "name the objection") }
            entry = kind == .resolution ? try await lab.resolve(objection: parent, of: experiment, as: person, text: text.isEmpty ? "resolved" : text)
                                        : try await lab.overrule(objection: parent, of: experiment, as: person, reason: text)
        }
        return ("\(entry.kind.rawValue) #\(entry.id ?? 0) by \(entry.author) recorded", ["experiments", experiment])
    })
    // Sign-out clears the cookie too; wraps the action so the CSRF check still comes first.
    let signOut = action(reason: false) { _, _ in ("signed out", ["login"]) }
    router.post("logout") { request, context in
        var response = try await signOut(request, context)
        if response.status == .ok {
            sessions.close(sessionID(request))
            response = redirect("/login", cookie: cookie("", maxAge: 0))
        }
        return response
    }
    return router
}

/// Refuses a state change whose Origin (or, without one, Referer) is not this dashboard's own
/// host: a page on another site cannot post our forms with the reviewer's cookie.
func sameOriginRefusal(_ request: Request) -> String? {
    // HTTP/1's Host header arrives as the request's authority.
    guard let host = request.head.authority else {
        return "the request names no Host"
    }
    let claimed = request.headers[.origin] ?? request.headers[.referer]
    guard let claimed else { return "the request carries neither Origin nor Referer, so it cannot be told from a forged one" }
    guard let url = URL(string: claimed), let scheme = url.scheme, ["http", "https"].contains(scheme), let claimedHost = url.host else {
        return "Origin '\(claimed.prefix(100))' is not this dashboard"
    }
    let authority = url.port.map { "\(claimedHost):\($0)" } ?? claimedHost
    return authority.lowercased() == host.lowercased() ? nil : "Origin '\(claimed.prefix(100))' is not this dashboard (\(host))"
}

/// Headers that keep a page from running scripts, being framed, or leaking its URL elsewhere.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        response.headers[.cacheControl] = "no-store"
        return response
    }
}

/// application/x-www-form-urlencoded, as browsers post forms.
func parseForm(_ text: String) -> [String: String] {
    var fields: [String: String] = [:]
    for pair in text.split(separator: "&") {
        let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) }
        if parts.count == 2 { fields[parts[0]] = parts[1] } else if parts.count == 1 { fields[parts[0]] = "" }
    }
    return fields
}
