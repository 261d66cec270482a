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

    /// The analysis body, shared by the standalone report and the dashboard.
    public static func body(_ report: ExperimentAnalysisReport, hash: String) -> HTML {
        var html: HTML = """
            <h1>Experiment \(report.experiment), phase \(report.phase)</h1><p>\(report.hypothesis)</p>\
            <p class="badge \(report.recommendation.rawValue)">Recommendation: \(report.recommendation.rawValue)</p>\
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
        html += "</table><h2>Incidents</h2>"
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
