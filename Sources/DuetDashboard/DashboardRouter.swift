import DuetCore
public import DuetLab
import DuetStore
import Foundation
public import Hummingbird

/// The review dashboard's routes. Reads render pages; the three actions (promote, rollback, decide)
/// need the admin token and a reason, and go through the same Lab operations as the CLI.
public func buildDashboardRouter(pages: DashboardPages, adminToken: String?) -> Router<BasicRequestContext> {
    let router = Router()
    @Sendable func isAdmin(_ request: Request) -> (Bool, String?) {
        guard let adminToken, let presented = request.uri.queryParameters.get("token"), presented == adminToken else { return (false, nil) }
        return (true, presented)
    }
    @Sendable func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    func render(_ body: @escaping @Sendable (Request, Bool, String?) async throws -> String) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, _ in
            let (admin, token) = isAdmin(request)
            do { return html(try await body(request, admin, token)) } catch {
                return html("<!doctype html><h1>Cannot show this</h1><p>\(AnalysisReportHTML.escape("\(error)"))</p><p><a href=\"/\">back</a></p>",
                            status: error is DuetError ? .notFound : .internalServerError)
            }
        }
    }
    router.get("/", use: render { _, admin, _ in try await pages.overview(admin: admin) })
    router.get("models", use: render { _, admin, token in try await pages.models(admin: admin, token: token) })
    router.get("history", use: render { _, admin, token in try await pages.history(admin: admin, token: token) })
    router.get("evaluations", use: render { _, _, _ in try await pages.evaluations() })
    router.get("experiments", use: render { _, _, _ in try await pages.experiments() })
    router.get("experiments/:id", use: render { request, admin, token in
        try await pages.experiment(request.uri.path.split(separator: "/").last.map(String.init)?.removingPercentEncoding ?? "", admin: admin, token: token)
    })
    router.get("decisions", use: render { _, _, _ in try await pages.decisions() })
    router.get("incidents", use: render { _, _, _ in try await pages.incidents() })

    /// State changes: admin only, a reason always, recorded by the registry.
    func action(_ perform: @escaping @Sendable ([String: String]) async throws -> String) -> @Sendable (Request, BasicRequestContext) async throws -> Response {
        { request, _ in
            let (admin, token) = isAdmin(request)
            guard admin, let token else { return html("<!doctype html><h1>Forbidden</h1><p>Actions need the admin token.</p>", status: .forbidden) }
            let body = try await request.body.collect(upTo: 64 * 1_024)
            let form = parseForm(String(buffer: body))
            guard let reason = form["reason"], !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
                return html("<!doctype html><h1>A reason is required</h1>", status: .badRequest)
            }
            do {
                let message = try await perform(form)
                return html("<!doctype html><meta charset=\"utf-8\"><p>\(AnalysisReportHTML.escape(message))</p><p><a href=\"/history?token=\(token)\">production history</a></p>")
            } catch {
                return html("<!doctype html><meta charset=\"utf-8\"><h1>Refused</h1><p>\(AnalysisReportHTML.escape("\(error)"))</p>", status: .conflict)
            }
        }
    }
    router.post("actions/promote", use: action { form in
        guard let model = form["model"] else { throw DuetError.invalidValue(field: "model", reason: "missing") }
        let change = try await pages.lab.promote(model, actor: "dashboard", reason: form["reason"]!)
        return "generation \(change.generation): production is now \(change.to.prefix(12))"
    })
    router.post("actions/rollback", use: action { form in
        let change = try await pages.lab.rollback(actor: "dashboard", reason: form["reason"]!)
        return "generation \(change.generation): rolled back to \(change.to.prefix(12))"
    })
    router.post("actions/decide", use: action { form in
        guard let experiment = form["experiment"], let outcome = form["outcome"].flatMap(DecisionOutcome.init(rawValue:)),
              let reviewer = form["reviewer"], !reviewer.isEmpty else {
            throw DuetError.invalidValue(field: "decision", reason: "experiment, outcome and reviewer are required")
        }
        let override = form["override"].flatMap { $0.isEmpty ? nil : $0 }
        let (id, decision) = try await pages.lab.decide(experiment: experiment, outcome: outcome, arm: nil, reviewer: reviewer,
                                                        reason: form["reason"]!, overrideReason: override)
        return "decision #\(id) recorded: \(decision.outcome.rawValue) by \(decision.reviewer)"
    })
    return router
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
