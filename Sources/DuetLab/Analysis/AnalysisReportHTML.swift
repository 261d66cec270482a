import DuetCore
import Foundation

/// A self-contained HTML report: no scripts, no external assets, charts as inline SVG. Built with
/// `HTML`, so every value from the data is escaped.
public enum AnalysisReportHTML {
    public static let style: HTML = """
        body{font-family:system-ui,-apple-system,sans-serif;margin:2em;max-width:1100px;color:#1d2433}
        table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #dde;padding:4px 10px;text-align:left}
        .ship{color:#116b2f}.no-ship{color:#a11}.inconclusive{color:#8a5a00}.badge{font-weight:700;font-size:1.3em}
        code{background:#f3f4f8;padding:1px 4px}nav a{margin-right:1em}form.inline{display:inline}
        """

    public static func number(_ format: String, _ values: Double...) -> String { String(format: format, arguments: values) }

    /// A horizontal interval chart: each row a point estimate with its CI, zero marked.
    /// `higherIsBetter` colours a row green when the whole interval lies on the good side of zero.
    public static func intervalChart(_ rows: [(label: String, estimate: Double, lower: Double, upper: Double)], higherIsBetter: [Bool]? = nil) -> HTML {
        guard !rows.isEmpty else { return .empty }
        let width = 640.0, left = 220.0, rowHeight = 28.0
        let extent = max(rows.map { max(abs($0.lower), abs($0.upper)) }.max() ?? 1, 1e-9) * 1.15
        func x(_ value: Double) -> Double { left + (value + extent) / (2 * extent) * (width - left - 20) }
        let bottom = Double(rows.count) * rowHeight
        var svg: HTML = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(bottom + 30))" role="img">\
            <line x1="\(x(0))" y1="0" x2="\(x(0))" y2="\(bottom)" stroke="#999" stroke-dasharray="4"/>
            """
        for (index, row) in rows.enumerated() {
            let y = Double(index) * rowHeight + 16
            let up = higherIsBetter?[index] ?? true
            let good = up ? row.lower > 0 : row.upper < 0, bad = up ? row.upper < 0 : row.lower > 0
            let color = good ? "#116b2f" : (bad ? "#a11" : "#555")
            svg += """
                <text x="4" y="\(y + 4)" font-size="12">\(row.label)</text>\
                <line x1="\(x(row.lower))" y1="\(y)" x2="\(x(row.upper))" y2="\(y)" stroke="\(color)" stroke-width="3"/>\
                <circle cx="\(x(row.estimate))" cy="\(y)" r="5" fill="\(color)"/>
                """
        }
        svg += """
            <text x="\(x(-extent))" y="\(bottom + 22)" font-size="11">\(number("%+.3g", -extent))</text>\
            <text x="\(x(0) - 4)" y="\(bottom + 22)" font-size="11">0</text>\
            <text x="\(x(extent) - 40)" y="\(bottom + 22)" font-size="11">\(number("%+.3g", extent))</text></svg>
            """
        return svg
    }

    static let palette = ["#1f5fa8", "#c2410c", "#15803d", "#7e22ce", "#a16207"]

    /// A line chart over the periods of the series: each line a (label, values) pair, an optional
    /// band (the interval around the first line), periods with an incident shaded, zero marked.
    public static func lineChart(_ title: String, lines: [(label: String, values: [Double])], band: (lower: [Double], upper: [Double])? = nil,
                                 shaded: [Bool], xLabels: (String, String), percent: Bool = false) -> HTML {
        let count = lines.first?.values.count ?? 0
        guard count > 0 else { return .empty }
        let width = 640.0, height = 170.0, left = 60.0, right = 20.0, top = 22.0, bottom = 24.0
        let values = (lines.flatMap(\.values) + (band.map { $0.lower + $0.upper } ?? []) + [0]).filter(\.isFinite)
        var low = values.min() ?? 0, high = values.max() ?? 1
        if high - low < 1e-12 { high += 1; low -= percent ? 0 : 1 }
        let pad = (high - low) * 0.08
        low -= pad; high += pad
        func x(_ index: Int) -> Double { left + (count == 1 ? (width - left - right) / 2 : Double(index) / Double(count - 1) * (width - left - right)) }
        func y(_ value: Double) -> Double { top + (high - value) / (high - low) * (height - top - bottom) }
        let step = count == 1 ? 20 : (width - left - right) / Double(count - 1)
        var svg: HTML = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" role="img">\
            <text x="\(left)" y="14" font-size="12" font-weight="600">\(title)</text>
            """
        for (index, incident) in shaded.enumerated() where incident {
            svg += "<rect x=\"\(x(index) - step / 2)\" y=\"\(top)\" width=\"\(step)\" height=\"\(height - top - bottom)\" fill=\"#f3d9d9\"/>"
        }
        if let band {
            var upper: [String] = [], lower: [String] = []
            for index in 0..<count where band.lower[index].isFinite && band.upper[index].isFinite {
                upper.append("\(x(index)),\(y(band.upper[index]))")
                lower.insert("\(x(index)),\(y(band.lower[index]))", at: 0)
            }
            if !upper.isEmpty { svg += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"#1f5fa8\" fill-opacity=\"0.15\"/>" }
        }
        if low < 0, high > 0 { svg += "<line x1=\"\(left)\" y1=\"\(y(0))\" x2=\"\(width - right)\" y2=\"\(y(0))\" stroke=\"#999\" stroke-dasharray=\"4\"/>" }
        for (offset, line) in lines.enumerated() {
            let color = palette[offset % palette.count]
            let points = line.values.enumerated().filter { $0.element.isFinite }.map { "\(x($0.offset)),\(y($0.element))" }
            if points.count > 1 { svg += "<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>" }
            for point in points { let xy = point.split(separator: ","); svg += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"2.5\" fill=\"\(color)\"/>" }
            svg += "<text x=\"\(width - right - 150)\" y=\"\(top + 12 + Double(offset) * 13)\" font-size=\"11\" fill=\"\(color)\">\(line.label)</text>"
        }
        let format = percent ? "%.0f%%" : "%.3g"
        let scale = percent ? 100.0 : 1.0
        svg += """
            <text x="4" y="\(y(high - pad) + 4)" font-size="10">\(number(format, (high - pad) * scale))</text>\
            <text x="4" y="\(y(low + pad) + 4)" font-size="10">\(number(format, (low + pad) * scale))</text>\
            <text x="\(left)" y="\(height - 6)" font-size="10">\(xLabels.0)</text>\
            <text x="\(width - right - 120)" y="\(height - 6)" font-size="10">\(xLabels.1)</text></svg>
            """
        return svg
    }

    /// The series over time: the cumulative effect of each success metric with its interval, users
    /// per arm, exposures per period and the fallback share, incidents shaded.
    public static func overTime(_ series: TimeSeries?, sequential: Bool) -> HTML {
        guard let series, !series.points.isEmpty else { return .empty }
        let points = series.points
        let unit = series.periodMillis >= 86_400_000 ? "day" : series.periodMillis >= 3_600_000 ? "hour" : series.periodMillis >= 60_000 ? "minute" : "second"
        let size = series.periodMillis >= 86_400_000 ? series.periodMillis / 86_400_000 : series.periodMillis >= 3_600_000 ? series.periodMillis / 3_600_000
            : series.periodMillis >= 60_000 ? series.periodMillis / 60_000 : series.periodMillis / 1_000
        let xLabels = (TimestampParser.iso8601String(points[0].start), TimestampParser.iso8601String(points[points.count - 1].start))
        let shaded = points.map(\.incident)
        let bands = sequential ? "Bands are the always-valid confidence sequence: safe to look at every point."
            : "Bands are fixed-horizon intervals: looking at every point and stopping on a good one inflates false positives (use sequential mode for that)."
        let every = size == 1 ? unit : "\(size) \(unit)s"
        var html: HTML = """
            <h2>Over time</h2><p>One point per \(every) since the phase started; shaded periods overlap an incident \
            or a fallback burst. \(bands)</p>
            """
        var keys: [(String, String)] = []
        for point in points { for effect in point.effects where !keys.contains(where: { $0 == (effect.metric, effect.arm) }) { keys.append((effect.metric, effect.arm)) } }
        for (metric, arm) in keys {
            let pick = { (point: TimePoint) in point.effects.first { $0.metric == metric && $0.arm == arm } }
            html += lineChart("cumulative effect: \(metric) (\(arm) − control)", lines: [("estimate", points.map { pick($0)?.estimate ?? .nan })],
                              band: (points.map { pick($0)?.lower ?? .nan }, points.map { pick($0)?.upper ?? .nan }), shaded: shaded, xLabels: xLabels)
        }
        let arms = series.arms
        html += lineChart("users so far, per arm", lines: arms.indices.map { arm in (arms[arm], points.map { Double($0.users[arm]) }) }, shaded: shaded, xLabels: xLabels)
        html += lineChart("exposures per period, per arm", lines: arms.indices.map { arm in (arms[arm], points.map { Double($0.exposures[arm]) }) },
                          shaded: shaded, xLabels: xLabels)
        html += lineChart("fallback share per period, per arm", lines: arms.indices.map { arm in (arms[arm], points.map { $0.fallbackShare[arm] }) },
                          shaded: shaded, xLabels: xLabels, percent: true)
        html += lineChart("sample-ratio p-value on the users so far", lines: [("p", points.map(\.srmPValue))], shaded: shaded, xLabels: xLabels)
        return html
    }

    /// What nobody declared: flagged surprises first, then every test in a folded table.
    public static func exploratory(_ results: [ExploratoryResult]?) -> HTML {
        guard let results, !results.isEmpty else { return .empty }
        let surprises = results.filter(\.surprise)
        func rows(_ list: [ExploratoryResult]) -> HTML {
            list.map { r in
                """
                <tr><td>\(r.metric)</td><td>\(r.segment)</td><td>\(r.arm)</td><td>\(r.controlUsers) / \(r.treatmentUsers)</td>\
                <td>\(number("%.4f", r.controlValue))</td><td>\(number("%.4f", r.treatmentValue))</td>\
                <td>\(number("%+.4f [%+.4f, %+.4f]", r.difference, r.lower, r.upper))</td><td>\(r.relative.map { number("%+.1f%%", $0 * 100) } ?? "–")</td>\
                <td>\(number("%.3g", r.qValue))</td></tr>
                """ as HTML
            }.joined()
        }
        let header: HTML = "<tr><th>metric</th><th>segment</th><th>arm</th><th>users (control / treatment)</th><th>control</th><th>treatment</th><th>difference [95% CI]</th><th>relative</th><th>q (BH)</th></tr>"
        var html: HTML = """
            <h2>Exploratory: what nobody declared</h2><p>Every metric the event log supports, by segments fixed before the treatment \
            (activity tercile and top genre in the pre-period). Its own Benjamini–Hochberg correction over \(results.count) tests; \
            shown apart and never part of the recommendation. A large (≥ 5%) significant difference is flagged for review.</p>
            """
        html += surprises.isEmpty ? "<p id=\"surprises\">No surprises flagged.</p>"
            : "<p id=\"surprises\"><b>\(surprises.count) flagged for review:</b></p><table>\(header)\(rows(surprises))</table>"
        html += "<details><summary>All \(results.count) exploratory tests</summary><table>\(header)\(rows(results))</table></details>"
        return html
    }

    /// The analysis body, shared by the standalone report and the dashboard.
    public static func body(_ report: ExperimentAnalysisReport, hash: String) -> HTML {
        var html: HTML = """
            <h1>Experiment \(report.experiment), phase \(report.phase)</h1><p>\(report.hypothesis)</p>\
            <p class="badge \(report.recommendation.rawValue)">Recommendation: \(report.recommendation.rawValue)</p>\
            \(report.holdoutSummary.map { "<p id=\"holdout-summary\"><b>\($0)</b></p>" as HTML } ?? .empty)\
            <ul>\(report.reasons.map { "<li>\($0)</li>" as HTML })</ul>\
            <p>Window \(TimestampParser.iso8601String(report.window[0])) – \(TimestampParser.iso8601String(report.window[1])); \
            event log frozen at event #\(report.frozenAt[0]), exposure #\(report.frozenAt[1]). Analysis hash <code id="analysis-hash">\(hash)</code>.</p>\
            <h2>Sample ratio</h2><p>\(report.srm.detected ? "<b class=\"no-ship\">Mismatch detected</b>" : report.srm.tooSmallToJudge == true ? "<b>Too few users to judge</b>" : "As planned" as HTML)\
            : \(report.srm.method ?? "chi-squared"), χ² = \(number("%.3f", report.srm.chiSquared)), p = \(number("%.3g", report.srm.pValue)).</p>\
            <table><tr><th>arm</th><th>bundle</th><th>users</th><th>expected share</th><th>exposures</th><th>fallback exposures</th><th>reasons</th></tr>
            """
        for (arm, share) in zip(report.arms, report.srm.expectedShares) {
            html += """
                <tr><td>\(arm.arm)</td><td><code>\(arm.bundle.prefix(12))</code></td><td>\(arm.users)</td><td>\(number("%.1f%%", share * 100))</td>\
                <td>\(arm.exposures)</td><td>\(arm.fallbackExposures)</td>\
                <td>\(arm.fallbackReasons.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", "))</td></tr>
                """
        }
        html += "</table><h2>Metrics</h2>"
        html += intervalChart(report.metrics.map { metric in
            let effect = metric.decisive
            return ("\(metric.metric) (\(metric.arm))", effect.estimate, effect.lower, effect.upper)
        }, higherIsBetter: report.metrics.map(\.higherIsBetter))
        let correction = (report.correction ?? .holm).label
        html += """
            <p>p-values adjusted by \(correction) across success metrics × arms. \
            CUPED covariate: \(report.cupedWindow.map { "feedback from \(TimestampParser.iso8601String($0[0])) to \(TimestampParser.iso8601String($0[1])), before the experiment's first start" } ?? "none"). \
            Non-inferiority: \(report.nonInferiorityConvention ?? ExperimentAnalysisReport.nonInferiorityConventionText)\(report.sequential ? ", judged by the always-valid bound" : "").</p>\
            <table><tr><th>metric</th><th>role</th><th>arm</th><th>control</th><th>treatment</th><th>difference [95% CI]</th><th>relative</th>\
            <th>CUPED</th><th>p (\(correction))</th><th>verdict</th></tr>
            """
        for metric in report.metrics {
            let effect = metric.absolute
            var verdict = metric.verdict
            if let ni = metric.nonInferiority { verdict = ni.nonInferior ? "non-inferior" : "not shown non-inferior" }
            let relative = metric.relative.map { number("%+.2f%% [%+.2f%%, %+.2f%%]", $0.estimate * 100, $0.lower * 100, $0.upper * 100) } ?? "–"
            let cuped = metric.cuped.map { number("%+.4f [%+.4f, %+.4f]", $0.estimate, $0.lower, $0.upper) } ?? "–"
            html += """
                <tr><td>\(metric.metric)</td><td>\(metric.role)</td><td>\(metric.arm)</td>\
                <td>\(number("%.4f", metric.controlValue))</td><td>\(number("%.4f", metric.treatmentValue))</td>\
                <td>\(number("%+.4f [%+.4f, %+.4f]", effect.estimate, effect.lower, effect.upper))</td><td>\(relative)</td><td>\(cuped)</td>\
                <td>\(metric.adjustedPValue.map { number("%.3g", $0) } ?? "–")</td><td>\(verdict)</td></tr>
                """
        }
        html += "</table>"
        if let power = report.power {
            let days = power.daysRemaining.map { number("%.1f", $0) + " days remaining at the pace users have come so far" } ?? (power.reached >= 0.8 ? "enough users" : "pace unknown")
            html += """
                <h2>Power</h2><p id="power">For a \(number("%.1f%%", power.minimumDetectableEffect * 100)) lift in \(power.metric): \
                power reached \(number("%.0f%%", power.reached * 100)); 80% needs \(power.usersNeededPerArm.map(String.init).joined(separator: " / ")) users per arm; \(days).</p>
                """
        }
        html += overTime(report.overTime, sequential: report.sequential)
        html += exploratory(report.exploratory)
        html += "<h2>Incidents</h2>"
        html += report.incidents.isEmpty ? "<p>None overlapping this phase.</p>" : "<ul>\(report.incidents.map { "<li>\($0)</li>" as HTML })</ul>"
        if report.excludedExposures > 0 || (report.excludedEvents ?? 0) > 0 {
            html += "<p>\(report.excludedExposures) exposures and \(report.excludedEvents ?? 0) feedback events inside incident windows or fallback bursts were excluded.</p>"
        }
        return html
    }

    public static func render(_ report: ExperimentAnalysisReport, hash: String) -> String {
        let page: HTML = """
            <!doctype html><html><head><meta charset="utf-8"><title>Duet analysis: \(report.experiment)</title><style>\(style)</style></head>\
            <body>\(body(report, hash: hash))</body></html>
            """
        return page.rendered
    }
}
