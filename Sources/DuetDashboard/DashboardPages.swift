import DuetCore
public import DuetLab
public import DuetStore
import Foundation

/// Who is looking at a page: actions (and their CSRF token) appear only for someone signed in.
public struct Viewer: Sendable {
    /// The session's CSRF token; nil for a read-only viewer.
    public var csrf: String?
    /// Whether the dashboard needs sign-in at all (then every page needs a session).
    public var signedIn: Bool
    /// Who signed in: a registered person, or "admin" with the admin token. Their actions carry this name.
    public var person: String?

    public static let readOnly = Viewer(csrf: nil, signedIn: false)
    public var canAct: Bool { csrf != nil }

    public init(csrf: String?, signedIn: Bool, person: String? = nil) {
        self.csrf = csrf
        self.signedIn = signedIn
        self.person = person
    }
}

/// Server-rendered pages of the review dashboard: plain HTML with inline SVG, no scripts and no
/// external assets, so it works offline. Every page is built with `HTML`, which escapes each value.
/// A GET only reads: analyses are computed by a POST (or `duet lab analyze`) and shown as stored.
public struct DashboardPages: Sendable {
    public let lab: Lab
    public let eventLog: any EventLog

    public init(lab: Lab, eventLog: any EventLog) {
        self.lab = lab
        self.eventLog = eventLog
    }

    typealias H = AnalysisReportHTML

    static func page(_ title: String, _ viewer: Viewer, _ body: HTML) -> HTML {
        let logout: HTML = viewer.signedIn
            ? "<span id=\"who\">\(viewer.person ?? "")</span> <form class=\"inline\" method=\"post\" action=\"/logout\">\(csrfField(viewer))<button>log out</button></form>" : .empty
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>Duet · \(title)</title><style>\(H.style)</style></head><body>\
            <nav><b>Duet Lab</b> <a href="/">overview</a><a href="/models">models</a><a href="/history">production history</a>\
            <a href="/evaluations">offline evaluations</a><a href="/experiments">experiments</a><a href="/memory">memory</a><a href="/decisions">decisions</a>\
            <a href="/incidents">incidents</a><a href="/webhooks">webhooks</a>\(logout)</nav>\(body)</body></html>
            """
    }

    static func csrfField(_ viewer: Viewer) -> HTML {
        viewer.csrf.map { "<input type=\"hidden\" name=\"csrf\" value=\"\($0)\">" } ?? .empty
    }

    static func short(_ id: String?) -> HTML { id.map { "<code title=\"\($0)\">\($0.prefix(12))</code>" } ?? "—" }
    static func time(_ millis: EpochMillis?) -> String { millis.map { TimestampParser.iso8601String($0) } ?? "—" }

    /// A state change: a POST carrying the session's CSRF token and a reason.
    static func actionForm(_ action: String, _ viewer: Viewer, _ fields: HTML, _ label: String, reason: Bool = true) -> HTML {
        let reasonField: HTML = reason ? "<input name=\"reason\" placeholder=\"reason (required)\" required> " : .empty
        return "<form method=\"post\" action=\"\(path: "actions", action)\">\(csrfField(viewer))\(fields)\(reasonField)<button>\(label)</button></form>"
    }

    /// What is live and whether it is healthy, at a glance: production and since when, running
    /// experiments and holdouts with their sample-ratio state, fallback share and days remaining
    /// (from their newest stored analysis), reviews waiting, the last changes with their evidence,
    /// and the last hour of exposures counted in the event log.
    public func overview(_ viewer: Viewer) async throws -> HTML {
        let now = Date().epochMillis
        let (generation, production) = try await lab.registry.production()
        let models = try await lab.registry.models()
        let experiments = try await lab.registry.experiments()
        let history = try await lab.registry.history()
        var body: HTML = "<h1>Overview</h1><h2>Production</h2><p>Generation <b id=\"generation\">\(generation)</b>: \(Self.short(production))"
        if let production, let model = models.first(where: { $0.id == production }) {
            body += " (\(model.name), \(model.kind), trained on snapshot \(Self.short(model.snapshot))\(model.owner.map { ", owned by \($0.team)" } ?? ""))"
        }
        if let last = history.last { body += ", since \(Self.time(last.changedAt)) (\(last.action.rawValue) by \(last.actor))" }
        body += ".</p>"

        let hour = try await eventLog.exposureSummary(from: now - 3_600_000, until: now + 1)
        func share(_ part: Int) -> String { hour.exposures > 0 ? H.number("%.1f%%", 100 * Double(part) / Double(hour.exposures)) : "—" }
        body += """
            <p id="last-hour">Last hour: <b>\(hour.exposures)</b> lists shown; \(share(hour.popularityFallbacks)) fell back to popularity, \
            \(share(hour.armFallbacks)) served an experiment arm by fallback.</p>
            """

        let live = experiments.filter { $0.spec.status == .running }
        body += "<h2>Running experiments and holdouts</h2>"
        if live.isEmpty { body += "<p>None.</p>" } else {
            body += "<table id=\"running\"><tr><th>id</th><th>kind</th><th>arms</th><th>started</th><th>sample ratio</th><th>fallback share</th><th>days remaining</th></tr>"
            for record in live {
                let spec = record.spec
                let arms = spec.arms.map { "\($0.name) \(Int(($0.weight * 100).rounded()))%" }.joined(separator: " / ")
                var ratio: HTML = "no analysis yet", fallback: HTML = "—", remaining: HTML = "—"
                if let (report, _) = try lab.latestAnalysis(of: spec.id) {
                    let srm = report.srm
                    ratio = srm.tooSmallToJudge == true ? "too few users" : srm.detected ? "<b class=\"no-ship\">mismatch</b> (p = \(H.number("%.2g", srm.pValue)))"
                        : "ok (p = \(H.number("%.2f", srm.pValue)))"
                    let exposures = report.arms.reduce(0) { $0 + $1.exposures }, fallbacks = report.arms.reduce(0) { $0 + $1.fallbackExposures }
                    fallback = exposures > 0 ? "\(H.number("%.1f%%", 100 * Double(fallbacks) / Double(exposures)))" : "—"
                    if !spec.isHoldout, let days = report.power?.daysRemaining { remaining = "\(H.number("%.1f", days)) (for power)" }
                }
                if let end = spec.plannedEnd { remaining = "\(H.number("%.0f", max(0, Double(end - now) / 86_400_000))) (period ends \(Self.time(end)))" }
                body += """
                    <tr><td><a href="\(path: "experiments", spec.id)">\(spec.id)</a></td><td>\((spec.kind ?? .abTest).rawValue)</td><td>\(arms)</td>\
                    <td>\(Self.time(record.startedAt))</td><td>\(ratio)</td><td>\(fallback)</td><td>\(remaining)</td></tr>
                    """
            }
            body += "</table>"
        }

        body += try await rolloutsSection()

        // Reviews waiting for someone: experiments stopped or in review, with their open objections (rollouts are not reviewed).
        var waiting: HTML = .empty
        for record in experiments where (record.spec.status == .stopped || record.spec.status == .inReview) && !record.spec.isRollout {
            let state = try await lab.reviewState(of: record.spec.id)
            let newest = try lab.latestAnalysis(of: record.spec.id)?.1
            let approvals = newest.map { state.countingApprovers(of: $0, author: record.spec.author).count } ?? 0
            let open = state.openObjections.map { "#\($0.entry.id ?? 0) by \($0.entry.author)" as HTML }.joined(separator: ", ")
            waiting += """
                <li><a href="\(path: "experiments", record.spec.id)">\(record.spec.id)</a>: \(record.spec.status.rawValue), \
                \(approvals) of \(record.spec.requiredApprovals) approvals\(state.openObjections.isEmpty ? HTML.empty : "; open objections: \(open)")</li>
                """
        }
        body += "<h2>Waiting for review</h2>" + (waiting == .empty ? "<p>Nothing.</p>" : "<ul id=\"waiting\">\(waiting)</ul>")

        body += "<h2>Last changes to production</h2><table id=\"changes\"><tr><th>generation</th><th>when</th><th>what</th><th>who</th><th>why</th><th>evidence</th></tr>"
        for change in history.suffix(5).reversed() {
            var evidence: [HTML] = []
            if let evaluation = change.evaluationID { evidence.append("evaluation #\(evaluation)") }
            if let decision = change.decisionID { evidence.append("<a href=\"/decisions\">decision #\(decision)</a>") }
            if let override = change.overrideReason { evidence.append("<b>override</b>: \(override)") }
            if let rollout = change.rolloutID { evidence.append("rollout \(rollout)") }
            body += """
                <tr><td>\(change.generation)</td><td>\(Self.time(change.changedAt))</td><td>\(change.action.rawValue) \(Self.short(change.from)) → \(Self.short(change.to))</td>\
                <td>\(change.actor)</td><td>\(change.reason)</td><td>\(evidence.isEmpty ? "—" : evidence.joined(separator: ", "))</td></tr>
                """
        }
        body += "</table><p>\(models.count) models, \(experiments.count) experiments in all.</p>"
        body += viewer.canAct ? "<p>Signed in as \(viewer.person ?? "admin"): actions are enabled and each one records its reason.</p>"
            : "<p>Read-only. Start the dashboard with $DUET_ADMIN_TOKEN (or --admin-token-file), or give people sign-in tokens, to act.</p>"
        return Self.page("overview", viewer, body)
    }

    /// Staged rollouts, newest first: the stages with the current one marked, and each step the guard or a person took.
    func rolloutsSection() async throws -> HTML {
        let rollouts = try await lab.registry.rollouts().suffix(5).reversed()
        guard !rollouts.isEmpty else { return "<h2>Rollouts</h2><p>None yet.</p>" }
        var body: HTML = "<h2>Rollouts</h2><table id=\"rollouts\"><tr><th>id</th><th>lane</th><th>candidate</th><th>stages</th><th>status</th><th>steps</th></tr>"
        for rollout in rollouts {
            let stages = rollout.stages.enumerated().map { index, stage -> HTML in
                let share = H.number("%g%%", stage.share * 100)
                return index == rollout.stage ? "<b>\(share)</b>" : "\(share)"
            }.joined(separator: " → ")
            let steps = try await lab.registry.rolloutEvents(of: rollout.id).map { event -> HTML in
                "\(event.action.rawValue) at \(H.number("%g%%", event.share * 100)) by \(event.actor)\(event.analysisHash.map { " (analysis \(Self.short($0)))" as HTML } ?? HTML.empty): \(event.reason)"
            }.joined(separator: "<br>")
            let status: HTML = rollout.status == .rolledBack ? "<b class=\"no-ship\">rolled back</b>" : "\(rollout.status.rawValue)"
            body += """
                <tr><td>\(rollout.id)</td><td>\(rollout.lane.rawValue)\(rollout.recipe.map { " (\($0))" as HTML } ?? HTML.empty)</td>\
                <td>\(Self.short(rollout.candidate)) over \(Self.short(rollout.baseline))</td><td>\(stages)</td><td>\(status)</td><td>\(steps)</td></tr>
                """
        }
        return body + "</table>"
    }

    public func models(_ viewer: Viewer) async throws -> HTML {
        let models = try await lab.registry.models()
        var body: HTML = """
            <h1>Models and lineage</h1><table><tr><th>id</th><th>name</th><th>kind</th><th>status</th><th>snapshot</th><th>parent</th>\
            <th>created</th><th>evaluations</th>\(viewer.canAct ? "<th>action</th>" : HTML.empty)</tr>
            """
        for model in models {
            let evaluations = try await lab.registry.evaluations(candidate: model.id)
            let listed = evaluations.map { "#\($0.id ?? 0) vs \($0.baseline.map { String($0.prefix(8)) } ?? "popularity")" }.joined(separator: ", ")
            body += """
                <tr><td>\(Self.short(model.id))</td><td>\(model.name)</td><td>\(model.kind)</td><td>\(model.status.rawValue)</td>\
                <td>\(Self.short(model.snapshot))</td><td>\(Self.short(model.parent))</td><td>\(Self.time(model.createdAt))</td><td>\(listed)</td>
                """
            if viewer.canAct {
                body += model.status != .production
                    ? "<td>\(Self.actionForm("promote", viewer, "<input type=\"hidden\" name=\"model\" value=\"\(model.id)\">", "promote"))</td>" : "<td></td>"
            }
            body += "</tr>"
        }
        return Self.page("models", viewer, body + "</table>")
    }

    public func history(_ viewer: Viewer) async throws -> HTML {
        let history = try await lab.registry.history()
        var body: HTML = """
            <h1>Production history</h1><p>What served when, and why.</p><table><tr><th>generation</th><th>when</th><th>action</th>\
            <th>from</th><th>to</th><th>who</th><th>why</th><th>rests on</th></tr>
            """
        for change in history.reversed() {
            var evidence: [HTML] = []
            if let evaluation = change.evaluationID { evidence.append("evaluation #\(evaluation)") }
            if let decision = change.decisionID { evidence.append("decision #\(decision)") }
            if let override = change.overrideReason { evidence.append("<b>override</b>: \(override)") }
            body += """
                <tr><td>\(change.generation)</td><td>\(Self.time(change.changedAt))</td><td>\(change.action.rawValue)</td><td>\(Self.short(change.from))</td>\
                <td>\(Self.short(change.to))</td><td>\(change.actor)</td><td>\(change.reason)</td><td>\(evidence.joined(separator: ", "))</td></tr>
                """
        }
        body += "</table>"
        if viewer.canAct, !history.isEmpty { body += Self.actionForm("rollback", viewer, .empty, "roll back one step") }
        return Self.page("history", viewer, body)
    }

    public func evaluations(_ viewer: Viewer) async throws -> HTML {
        var body: HTML = "<h1>Offline evaluations</h1>"
        for evaluation in try await lab.registry.evaluations(candidate: nil).reversed() {
            body += """
                <h2>#\(evaluation.id ?? 0): \(Self.short(evaluation.candidate)) vs \(evaluation.baseline.map { Self.short($0) } ?? "popularity")</h2>\
                <p>snapshot \(Self.short(evaluation.snapshot)), split <code>\(evaluation.split)</code>, k = \(evaluation.k), \(Self.time(evaluation.createdAt))</p>
                """
            guard let comparison = try? JSONDecoder().decode(OfflineComparison.self, from: Data(evaluation.metricsJSON.utf8)) else {
                body += "<p>(its metrics could not be read)</p>"
                continue
            }
            body += H.intervalChart(comparison.differences.map { ($0.metric, $0.difference, $0.lower, $0.upper) })
            body += "<table><tr><th>metric</th><th>baseline</th><th>candidate</th><th>difference [95% CI]</th></tr>"
            for difference in comparison.differences {
                body += """
                    <tr><td>\(difference.metric)</td><td>\(H.number("%.4f", difference.baseline))</td><td>\(H.number("%.4f", difference.candidate))</td>\
                    <td>\(H.number("%+.4f [%+.4f, %+.4f]", difference.difference, difference.lower, difference.upper))</td></tr>
                    """
            }
            body += "</table>"
            for warning in comparison.warnings { body += "<p>warning: \(warning)</p>" }
        }
        return Self.page("offline evaluations", viewer, body)
    }

    public func experiments(_ viewer: Viewer) async throws -> HTML {
        var body: HTML = """
            <h1>Experiments</h1><p>Offline and online numbers side by side, with each decision: <a href="/memory">the memory of every \
            experiment</a> (<a href="/experiments.json">JSON</a>).</p><table><tr><th>id</th><th>kind</th><th>status</th><th>phase</th><th>owner</th><th>arms</th><th>hypothesis</th></tr>
            """
        for record in try await lab.registry.experiments() {
            let arms = record.spec.arms.map { "\($0.name) \(Int(($0.weight * 100).rounded()))% \(Self.short($0.bundleID))" as HTML }.joined(separator: "<br>")
            body += """
                <tr><td><a href="\(path: "experiments", record.spec.id)">\(record.spec.id)</a></td><td>\((record.spec.kind ?? .abTest).rawValue)</td>\
                <td>\(record.spec.status.rawValue)</td><td>\(record.phase)</td><td>\(record.spec.owner?.team ?? "—")</td><td>\(arms)</td><td>\(record.spec.hypothesis)</td></tr>
                """
        }
        return Self.page("experiments", viewer, body + "</table>")
    }

    /// A stored analysis of the experiment (the newest, or the one `analysis` names), with the list
    /// of all of them; a GET never computes or writes one.
    public func experiment(_ id: String, _ viewer: Viewer, analysis requested: String? = nil) async throws -> HTML {
        try Identifier.validateFileSafe(id, field: "experiment id")
        guard let record = try await lab.registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
        guard record.spec.status != .draft else { return Self.page(id, viewer, "<h1>\(id)</h1><p>Draft: not started yet.</p>") }
        let analyze = viewer.canAct
            ? Self.actionForm("analyze", viewer, "<input type=\"hidden\" name=\"experiment\" value=\"\(id)\">", "analyze now", reason: false) : .empty
        guard let newest = try lab.latestAnalysis(of: id) else {
            return Self.page(id, viewer, "<h1>\(id)</h1><p>No stored analysis yet: run <code>duet lab analyze \(id)</code>\(viewer.canAct ? " or:" : ".")</p>\(analyze)")
        }
        var shown = newest
        if let requested {
            guard let found = try lab.storedAnalysis(of: id, prefix: requested) else { throw DuetError.notFound(kind: "analysis", id: "\(requested) of experiment \(id)") }
            shown = found
        }
        let (report, hash) = shown
        let isNewest = hash == newest.1
        var body = H.body(report, hash: hash)
        body += isNewest ? "<p>This is the newest stored analysis; the event log may have grown since.</p>\(analyze)"
            : "<p><b>This is an older analysis.</b> Decisions rest on the <a href=\"\(path: "experiments", id)\">newest</a>.</p>"
        let stored = try lab.storedAnalyses(of: id)
        body += "<h2>Stored analyses</h2><table><tr><th>analysis</th><th>phase</th><th>written</th></tr>"
        for entry in stored {
            body += "<tr><td><a href=\"\(path: "experiments", id)?analysis=\(entry.id)\"><code>\(entry.id)</code></a>\(entry.id == String(hash.prefix(12)) ? " (shown)" : "")</td><td>\(entry.phase)</td><td>\(Self.time(entry.written.epochMillis))</td></tr>"
        }
        body += "</table>"
        // Rollouts and shadows are not reviewed or decided: their record is their steps and their report.
        let decidable = !record.spec.isRollout && !record.spec.isShadow
        if decidable { body += try await review(record, viewer, newest: newest.1, shownIsNewest: isNewest) }
        if decidable, viewer.canAct, isNewest, record.spec.status != .decided, record.spec.status != .running {
            let outcomes = DecisionOutcome.allCases.map { "<option\($0 == report.recommendation.outcome ? " selected" : "")>\($0.rawValue)</option>" as HTML }
            // The form names the analysis on this page: a decision never rests on one the reviewer did not see.
            body += "<h2>Decide</h2><p>Recorded as decided by \(viewer.person ?? "you").</p>" + Self.actionForm("decide", viewer, """
                <input type="hidden" name="experiment" value="\(id)"><input type="hidden" name="analysis" value="\(hash)">\
                <select name="outcome">\(outcomes)</select> \
                <input name="override" placeholder="override reason (if against the recommendation)">
                """, "record decision")
        }
        return Self.page(id, viewer, body)
    }

    /// The review: approvals of the newest analysis, objections and their state, the thread, and a
    /// form for each thing a signed-in reviewer can add.
    func review(_ record: ExperimentRecord, _ viewer: Viewer, newest: String, shownIsNewest: Bool) async throws -> HTML {
        let spec = record.spec, id = spec.id
        let state = try await lab.reviewState(of: id)
        let approvers = state.countingApprovers(of: newest, author: spec.author)
        var body: HTML = """
            <section id="review"><h2>Review</h2><p>Status <b id="review-status">\(spec.status.rawValue)</b>; author \(spec.author ?? "unknown"); \
            owner \(spec.owner.map { "\($0.team) (\($0.contact))" } ?? "none"). A decision needs <b>\(spec.requiredApprovals)</b> approval(s) \
            of the newest analysis, the author's excluded, and no open objection.</p>\
            <p id="approvals">Approved by: \(approvers.isEmpty ? "nobody yet" : approvers.joined(separator: ", ")) (\(approvers.count) of \(spec.requiredApprovals))</p>
            """
        body += "<h3>Objections</h3><table id=\"objections\"><tr><th>#</th><th>by</th><th>objection</th><th>state</th><th></th></tr>"
        let open = viewer.canAct && (spec.status == .stopped || spec.status == .inReview)
        for objection in state.objections {
            let entry = objection.entry, number = entry.id ?? 0
            let status: HTML = switch objection.state {
            case .open: "<b class=\"no-ship\">open</b>"
            case .resolved: "resolved"
            case let .overruled(by, reason, _): "overruled by \(by): \(reason)"
            }
            var form: HTML = .empty
            if open, objection.isOpen {
                let hidden: HTML = "<input type=\"hidden\" name=\"experiment\" value=\"\(id)\"><input type=\"hidden\" name=\"parent\" value=\"\(number)\">"
                form = viewer.person == entry.author
                    ? Self.actionForm("review", viewer, hidden + "<input type=\"hidden\" name=\"kind\" value=\"resolution\"><input name=\"text\" placeholder=\"what settled it\">", "resolve", reason: false)
                    : Self.actionForm("review", viewer, hidden + "<input type=\"hidden\" name=\"kind\" value=\"overrule\"><input name=\"text\" placeholder=\"why it does not block (required)\" required>", "overrule", reason: false)
            }
            body += "<tr id=\"objection-\(number)\"><td>\(number)</td><td>\(entry.author)</td><td>\(entry.text)</td><td>\(status)</td><td>\(form)</td></tr>"
        }
        body += "</table><h3>Thread</h3><ol id=\"thread\">"
        for entry in state.entries where entry.kind != .resolution && entry.kind != .overrule {
            let what: HTML = switch entry.kind {
            case .approval: "approved analysis \(Self.short(entry.analysisHash))"
            case .objection: "<b>objected</b>"
            default: entry.parent.map { "replied to #\($0)" } ?? "commented"
            }
            body += "<li id=\"entry-\(entry.id ?? 0)\">#\(entry.id ?? 0) <b>\(entry.author)</b> \(what) \(Self.time(entry.createdAt)): \(entry.text)</li>"
        }
        body += "</ol>"
        if open {
            let hidden: HTML = "<input type=\"hidden\" name=\"experiment\" value=\"\(id)\">"
            body += Self.actionForm("review", viewer, hidden + "<input type=\"hidden\" name=\"kind\" value=\"comment\"><input name=\"text\" placeholder=\"comment\" required> <input name=\"parent\" placeholder=\"reply to # (optional)\" size=\"8\">", "comment", reason: false)
            body += Self.actionForm("review", viewer, hidden + "<input type=\"hidden\" name=\"kind\" value=\"objection\"><input name=\"text\" placeholder=\"objection: what is wrong\" required>", "object", reason: false)
            if shownIsNewest {
                body += Self.actionForm("review", viewer, hidden + "<input type=\"hidden\" name=\"kind\" value=\"approval\"><input type=\"hidden\" name=\"analysis\" value=\"\(newest)\"><input name=\"text\" placeholder=\"note (optional)\">", "approve this analysis", reason: false)
            }
        }
        return body + "</section>"
    }

    public func decisions(_ viewer: Viewer) async throws -> HTML {
        var body: HTML = """
            <h1>Decisions</h1><table><tr><th>#</th><th>experiment</th><th>outcome</th><th>arm</th><th>decided by</th><th>approvers</th><th>dissent</th><th>reason</th>\
            <th>analysis</th><th>override</th><th>promoted as</th><th>when</th></tr>
            """
        for stored in try await lab.registry.decisions(experiment: nil).reversed() {
            let decision = stored.decision
            body += """
                <tr><td>\(stored.id)</td><td><a href="\(path: "experiments", decision.experimentID)">\(decision.experimentID)</a></td>\
                <td>\(decision.outcome.rawValue)</td><td>\(decision.arm ?? "—")</td><td>\(decision.reviewer)</td>\
                <td>\(decision.approvers.isEmpty ? "—" : decision.approvers.joined(separator: ", "))</td>\
                <td>\(decision.dissent.isEmpty ? "—" : decision.dissent.map { "#\($0.objection) \($0.author): \($0.text) (overruled by \($0.overruledBy): \($0.reason))" }.joined(separator: "; "))</td>\
                <td>\(decision.reason)</td>\
                <td>\(Self.short(decision.analysisHash))</td><td>\(decision.overrideReason ?? "—")</td>\
                <td>\(decision.registryGeneration.map { "generation \($0)" } ?? "—")</td><td>\(Self.time(decision.decidedAt))</td></tr>
                """
        }
        return Self.page("decisions", viewer, body + "</table>")
    }

    public func incidents(_ viewer: Viewer) async throws -> HTML {
        var body: HTML = "<h1>Incidents</h1><table><tr><th>#</th><th>from</th><th>to</th><th>source</th><th>reason</th></tr>"
        for incident in try await lab.registry.incidents() {
            body += """
                <tr><td>\(incident.id ?? 0)</td><td>\(Self.time(incident.from))</td><td>\(Self.time(incident.until))</td>\
                <td>\(incident.source)</td><td>\(incident.reason)</td></tr>
                """
        }
        return Self.page("incidents", viewer, body + "</table><p>Fallback bursts found in the exposure log are listed on each experiment's analysis.</p>")
    }

    /// Every experiment with its offline and online numbers side by side, a chart of one against the
    /// other, and a search by metric, model or owner. `/memory.json` serves the same list.
    public func memory(_ viewer: Viewer, metric: String?, model: String?, owner: String?) async throws -> HTML {
        let entries = try await lab.experimentMemory(metric: metric, model: model, owner: owner)
        var body: HTML = """
            <h1>The memory of every experiment</h1>\
            <form method="get" action="/memory"><input name="metric" placeholder="metric" value="\(metric ?? "")"> \
            <input name="model" placeholder="model (id prefix or name)" value="\(model ?? "")"> <input name="owner" placeholder="owner (team or person)" value="\(owner ?? "")"> \
            <button>search</button> <a href="/memory.json">JSON</a></form>
            """
        body += Self.offlineOnlineChart(entries.compactMap { entry in entry.chartPoint.map { (entry.id, $0.offline, $0.online) } })
        body += """
            <table id="memory"><tr><th>experiment</th><th>kind</th><th>owner</th><th>dates</th><th>hypothesis</th><th>offline (treatment − control)</th>\
            <th>online lift [95% CI]</th><th>decision</th></tr>
            """
        for entry in entries {
            let offline = entry.offline.filter { $0.metric.hasPrefix("ndcg@") || $0.metric.hasPrefix("recall@") }
                .map { "\($0.arm) \($0.metric) \(H.number("%+.4f [%+.4f, %+.4f]", $0.difference, $0.lower, $0.upper)) (evaluation #\($0.evaluation))" as HTML }
            let online = entry.online.filter { $0.role != "exploratory" }
                .map { "\($0.arm) \($0.metric)\(entry.metricOwners[$0.metric].map { " (owned by \($0.team))" } ?? "") \($0.relative ? H.number("%+.1f%% [%+.1f%%, %+.1f%%]", $0.lift * 100, $0.lower * 100, $0.upper * 100) : H.number("%+.4f [%+.4f, %+.4f]", $0.lift, $0.lower, $0.upper)) \($0.verdict)" as HTML }
            var decision: HTML = "—"
            if let decided = entry.decision {
                decision = "#\(decided.id) \(decided.outcome) by \(decided.decidedBy); approved by \(decided.approvers.isEmpty ? "nobody" : decided.approvers.joined(separator: ", "))"
                for dissent in decided.dissent { decision += "; dissent: \(dissent.author) (\(dissent.text))" }
            }
            body += """
                <tr><td><a href="\(path: "experiments", entry.id)">\(entry.id)</a></td><td>\(entry.kind)</td><td>\(entry.owner?.team ?? "—")</td>\
                <td>\(Self.time(entry.startedAt)) – \(Self.time(entry.stoppedAt))</td><td>\(entry.hypothesis)</td>\
                <td>\(offline.isEmpty ? "—" : offline.joined(separator: "<br>"))</td><td>\(online.isEmpty ? "—" : online.joined(separator: "<br>"))</td><td>\(decision)</td></tr>
                """
        }
        return Self.page("memory", viewer, body + "</table>")
    }

    /// Offline NDCG difference (x) against online relative lift (y), one point per experiment: does
    /// the offline metric predict the online win?
    static func offlineOnlineChart(_ points: [(id: String, offline: Double, online: Double)]) -> HTML {
        guard !points.isEmpty else { return "<p>No experiment has both an offline evaluation of its treatment against its control and an online lift yet.</p>" }
        let width = 480.0, height = 260.0, pad = 40.0
        let xs = points.map(\.offline) + [0], ys = points.map(\.online) + [0]
        // A margin around the points, so a point on the edge and its label stay inside.
        func padded(_ values: [Double]) -> (Double, Double) {
            let low = values.min()!, high = max(values.max()!, low + 1e-9), margin = (high - low) * 0.15
            return (low - margin, high + margin)
        }
        let (x0, x1) = padded(xs), (y0, y1) = padded(ys)
        func x(_ value: Double) -> String { H.number("%.1f", pad + (value - x0) / (x1 - x0) * (width - 2 * pad)) }
        func y(_ value: Double) -> String { H.number("%.1f", height - pad - (value - y0) / (y1 - y0) * (height - 2 * pad)) }
        var svg: HTML = """
            <svg id="offline-online" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" role="img"><title>offline NDCG difference vs online lift</title>\
            <line x1="\(x(x0))" y1="\(y(0))" x2="\(x(x1))" y2="\(y(0))" stroke="#999"/><line x1="\(x(0))" y1="\(y(y0))" x2="\(x(0))" y2="\(y(y1))" stroke="#999"/>\
            <text x="\(Int(width / 2))" y="\(Int(height - 8))" font-size="11" text-anchor="middle">offline NDCG difference</text>\
            <text x="12" y="\(Int(height / 2))" font-size="11" transform="rotate(-90 12 \(Int(height / 2)))" text-anchor="middle">online lift</text>\
            <text x="\(x(x0))" y="\(Int(height - pad + 14))" font-size="10">\(H.number("%+.4f", x0))</text>\
            <text x="\(x(x1))" y="\(Int(height - pad + 14))" font-size="10" text-anchor="end">\(H.number("%+.4f", x1))</text>\
            <text x="\(Int(pad - 4))" y="\(y(y1))" font-size="10" text-anchor="end">\(H.number("%+.0f%%", y1 * 100))</text>\
            <text x="\(Int(pad - 4))" y="\(y(y0))" font-size="10" text-anchor="end">\(H.number("%+.0f%%", y0 * 100))</text>
            """
        for point in points {
            svg += "<circle cx=\"\(x(point.offline))\" cy=\"\(y(point.online))\" r=\"5\" fill=\"#2b6cb0\"><title>\(point.id)</title></circle><text x=\"\(x(point.offline))\" y=\"\(y(point.online))\" dx=\"-7\" dy=\"-8\" font-size=\"11\" text-anchor=\"end\">\(point.id)</text>"
        }
        return svg + "</svg>"
    }

    /// Webhooks (never their secrets) and the newest delivery attempts.
    public func webhooks(_ viewer: Viewer) async throws -> HTML {
        var body: HTML = "<h1>Webhooks</h1><table><tr><th>#</th><th>url</th><th>events</th><th>state</th><th>added by</th></tr>"
        for hook in try await lab.registry.webhooks() {
            body += "<tr><td>\(hook.id ?? 0)</td><td><code>\(hook.url)</code></td><td>\(hook.events.joined(separator: ", "))</td><td>\(hook.active ? "active" : "disabled")</td><td>\(hook.createdBy)</td></tr>"
        }
        body += "</table><h2>Delivery log</h2><table id=\"deliveries\"><tr><th>when</th><th>webhook</th><th>event</th><th>delivery</th><th>attempt</th><th>outcome</th><th>answer</th></tr>"
        for attempt in try await lab.registry.webhookAttempts(limit: 200) {
            body += """
                <tr><td>\(Self.time(attempt.at))</td><td>#\(attempt.webhook)</td><td>\(attempt.event)</td><td><code>\(attempt.delivery.prefix(8))</code></td>\
                <td>\(attempt.attempt)</td><td>\(attempt.outcome.rawValue)</td><td>\(attempt.statusCode.map { "HTTP \($0)" } ?? attempt.error ?? "")</td></tr>
                """
        }
        return Self.page("webhooks", viewer, body + "</table>")
    }

    public func login(failed: Bool) -> HTML {
        Self.page("sign in", .readOnly, """
            <h1>Sign in</h1>\(failed ? "<p class=\"no-ship\">That name and token do not match.</p>" : HTML.empty)\
            <p>Sign in with your name and the token from <code>duet lab people token NAME</code>, or with the admin token and no name.</p>\
            <form method="post" action="/login"><input name="name" placeholder="your name" autocomplete="username"> \
            <input type="password" name="token" placeholder="token" autocomplete="current-password" required> \
            <button>sign in</button></form>
            """)
    }
}
