import DuetCore
public import DuetLab
public import DuetStore
import Foundation

/// Server-rendered pages of the review dashboard: plain HTML with inline SVG, no scripts and no
/// external assets, so it works offline. Actions appear only for an admin session.
public struct DashboardPages: Sendable {
    public let lab: Lab
    public let eventLog: any EventLog

    public init(lab: Lab, eventLog: any EventLog) {
        self.lab = lab
        self.eventLog = eventLog
    }

    typealias H = AnalysisReportHTML

    static func page(_ title: String, _ body: String) -> String {
        """
        <!doctype html><html><head><meta charset="utf-8"><title>Duet · \(H.escape(title))</title><style>\(H.style)</style></head><body>
        <nav><b>Duet Lab</b> <a href="/">overview</a><a href="/models">models</a><a href="/history">production history</a>\
        <a href="/evaluations">offline evaluations</a><a href="/experiments">experiments</a><a href="/decisions">decisions</a>\
        <a href="/incidents">incidents</a></nav>\(body)</body></html>
        """
    }

    static func short(_ id: String?) -> String { id.map { "<code title=\"\(H.escape($0))\">\(H.escape(String($0.prefix(12))))</code>" } ?? "—" }
    static func time(_ millis: EpochMillis?) -> String { millis.map { TimestampParser.iso8601String($0) } ?? "—" }

    static func actionForm(_ path: String, _ fields: String, _ label: String) -> String {
        "<form method=\"post\" action=\"\(path)\">\(fields)<input name=\"reason\" placeholder=\"reason (required)\" required> <button>\(label)</button></form>"
    }

    public func overview(admin: Bool) async throws -> String {
        let (generation, production) = try await lab.registry.production()
        let models = try await lab.registry.models()
        let experiments = try await lab.registry.experiments()
        var body = "<h1>Overview</h1>"
        body += "<p>Production generation <b id=\"generation\">\(generation)</b>: \(Self.short(production))"
        if let production, let model = models.first(where: { $0.id == production }) { body += " (\(H.escape(model.name)), \(model.kind))" }
        body += "</p><p>\(models.count) models, \(experiments.filter { $0.spec.status == .running }.count) running experiments, "
        body += "\(experiments.count) in all.</p>"
        body += admin ? "<p>Admin session: actions are enabled and each one records its reason.</p>" : "<p>Read-only. Start the dashboard with --admin-token and open /?token=… to act.</p>"
        return Self.page("overview", body)
    }

    public func models(admin: Bool, token: String?) async throws -> String {
        let models = try await lab.registry.models()
        var body = "<h1>Models and lineage</h1><table><tr><th>id</th><th>name</th><th>kind</th><th>status</th><th>snapshot</th><th>parent</th><th>created</th><th>evaluations</th>\(admin ? "<th>action</th>" : "")</tr>"
        for model in models {
            let evaluations = try await lab.registry.evaluations(candidate: model.id)
            body += "<tr><td>\(Self.short(model.id))</td><td>\(H.escape(model.name))</td><td>\(model.kind)</td><td>\(model.status.rawValue)</td>"
            body += "<td>\(Self.short(model.snapshot))</td><td>\(Self.short(model.parent))</td><td>\(Self.time(model.createdAt))</td>"
            body += "<td>\(evaluations.map { "#\($0.id ?? 0) vs \($0.baseline.map { String($0.prefix(8)) } ?? "popularity")" }.joined(separator: ", "))</td>"
            if admin, model.status != .production {
                body += "<td>" + Self.actionForm("/actions/promote?token=\(token ?? "")", "<input type=\"hidden\" name=\"model\" value=\"\(model.id)\">", "promote") + "</td>"
            } else if admin { body += "<td></td>" }
            body += "</tr>"
        }
        return Self.page("models", body + "</table>")
    }

    public func history(admin: Bool, token: String?) async throws -> String {
        let history = try await lab.registry.history()
        var body = "<h1>Production history</h1><p>What served when, and why.</p>"
        body += "<table><tr><th>generation</th><th>when</th><th>action</th><th>from</th><th>to</th><th>who</th><th>why</th><th>rests on</th></tr>"
        for change in history.reversed() {
            var evidence: [String] = []
            if let evaluation = change.evaluationID { evidence.append("evaluation #\(evaluation)") }
            if let decision = change.decisionID { evidence.append("decision #\(decision)") }
            if let override = change.overrideReason { evidence.append("<b>override</b>: \(H.escape(override))") }
            body += "<tr><td>\(change.generation)</td><td>\(Self.time(change.changedAt))</td><td>\(change.action.rawValue)</td><td>\(Self.short(change.from))</td>"
            body += "<td>\(Self.short(change.to))</td><td>\(H.escape(change.actor))</td><td>\(H.escape(change.reason))</td><td>\(evidence.joined(separator: ", "))</td></tr>"
        }
        body += "</table>"
        if admin, !history.isEmpty { body += Self.actionForm("/actions/rollback?token=\(token ?? "")", "", "roll back one step") }
        return Self.page("history", body)
    }

    public func evaluations() async throws -> String {
        var body = "<h1>Offline evaluations</h1>"
        for evaluation in try await lab.registry.evaluations(candidate: nil).reversed() {
            body += "<h2>#\(evaluation.id ?? 0): \(Self.short(evaluation.candidate)) vs \(evaluation.baseline.map { Self.short($0) } ?? "popularity")</h2>"
            body += "<p>snapshot \(Self.short(evaluation.snapshot)), split <code>\(H.escape(evaluation.split))</code>, k = \(evaluation.k), \(Self.time(evaluation.createdAt))</p>"
            guard let comparison = try? JSONDecoder().decode(OfflineComparison.self, from: Data(evaluation.metricsJSON.utf8)) else { continue }
            body += H.intervalChart(comparison.differences.map { ($0.metric, $0.difference, $0.lower, $0.upper) })
            body += "<table><tr><th>metric</th><th>baseline</th><th>candidate</th><th>difference [95% CI]</th></tr>"
            for difference in comparison.differences {
                body += String(format: "<tr><td>%@</td><td>%.4f</td><td>%.4f</td><td>%+.4f [%+.4f, %+.4f]</td></tr>", H.escape(difference.metric) as NSString,
                               difference.baseline, difference.candidate, difference.difference, difference.lower, difference.upper)
            }
            body += "</table>"
            for warning in comparison.warnings { body += "<p>warning: \(H.escape(warning))</p>" }
        }
        return Self.page("offline evaluations", body)
    }

    public func experiments() async throws -> String {
        var body = "<h1>Experiments</h1><table><tr><th>id</th><th>status</th><th>phase</th><th>arms</th><th>hypothesis</th></tr>"
        for record in try await lab.registry.experiments() {
            let arms = record.spec.arms.map { "\(H.escape($0.name)) \(Int(($0.weight * 100).rounded()))% \(Self.short($0.bundleID))" }.joined(separator: "<br>")
            body += "<tr><td><a href=\"/experiments/\(H.escape(record.spec.id))\">\(H.escape(record.spec.id))</a></td><td>\(record.spec.status.rawValue)</td>"
            body += "<td>\(record.phase)</td><td>\(arms)</td><td>\(H.escape(record.spec.hypothesis))</td></tr>"
        }
        return Self.page("experiments", body + "</table>")
    }

    /// A live analysis: computed from the event log at request time.
    public func experiment(_ id: String, admin: Bool, token: String?) async throws -> String {
        guard let record = try await lab.registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
        guard record.spec.status != .draft else { return Self.page(id, "<h1>\(H.escape(id))</h1><p>Draft: not started yet.</p>") }
        let stored = try await lab.analyze(experiment: id, eventLog: eventLog)
        var body = H.body(stored.report, hash: stored.hash)
        if admin, record.spec.status != .decided {
            let outcomes = DecisionOutcome.allCases.map { "<option\($0 == stored.report.recommendation.outcome ? " selected" : "")>\($0.rawValue)</option>" }.joined()
            body += "<h2>Decide</h2>" + Self.actionForm("/actions/decide?token=\(token ?? "")",
                "<input type=\"hidden\" name=\"experiment\" value=\"\(H.escape(id))\"><select name=\"outcome\">\(outcomes)</select> <input name=\"reviewer\" placeholder=\"reviewer\" required> <input name=\"override\" placeholder=\"override reason (if against the recommendation)\">", "record decision")
        }
        return Self.page(id, body)
    }

    public func decisions() async throws -> String {
        var body = "<h1>Decisions</h1><table><tr><th>#</th><th>experiment</th><th>outcome</th><th>arm</th><th>reviewer</th><th>reason</th><th>analysis</th><th>override</th><th>promoted as</th><th>when</th></tr>"
        for stored in try await lab.registry.decisions(experiment: nil).reversed() {
            let decision = stored.decision
            body += "<tr><td>\(stored.id)</td><td><a href=\"/experiments/\(H.escape(decision.experimentID))\">\(H.escape(decision.experimentID))</a></td>"
            body += "<td>\(decision.outcome.rawValue)</td><td>\(H.escape(decision.arm ?? "—"))</td><td>\(H.escape(decision.reviewer))</td><td>\(H.escape(decision.reason))</td>"
            body += "<td>\(Self.short(decision.analysisHash))</td><td>\(H.escape(decision.overrideReason ?? "—"))</td>"
            body += "<td>\(decision.registryGeneration.map { "generation \($0)" } ?? "—")</td><td>\(Self.time(decision.decidedAt))</td></tr>"
        }
        return Self.page("decisions", body + "</table>")
    }

    public func incidents() async throws -> String {
        var body = "<h1>Incidents</h1><table><tr><th>#</th><th>from</th><th>to</th><th>source</th><th>reason</th></tr>"
        for incident in try await lab.registry.incidents() {
            body += "<tr><td>\(incident.id ?? 0)</td><td>\(Self.time(incident.from))</td><td>\(Self.time(incident.until))</td><td>\(incident.source)</td><td>\(H.escape(incident.reason))</td></tr>"
        }
        return Self.page("incidents", body + "</table><p>Fallback bursts found in the exposure log are listed on each experiment's analysis.</p>")
    }
}
