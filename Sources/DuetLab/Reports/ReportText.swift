import Foundation

/// Plain-text renderings that the CLI and the demo print.
extension OfflineComparison {
    public var textLines: [String] {
        let c = candidateMetrics, b = baselineMetrics
        var lines = [
            "offline evaluation on snapshot \(snapshot.prefix(12)), split \(split), \(c.users) test users, k=\(c.k)",
            "  candidate \(candidate.prefix(12)) vs baseline \(baseline.prefix(12)) (\(baselineKind))",
            "  metric        baseline  candidate  difference [95% CI]",
        ]
        for difference in differences {
            let verdict = difference.isSignificant ? (difference.difference > 0 ? "better" : "worse") : "no clear difference"
            let name = difference.metric.padding(toLength: 12, withPad: " ", startingAt: 0)
            lines.append("  \(name)" + String(format: " %9.4f  %9.4f  %+.4f [%+.4f, %+.4f]  ", difference.baseline, difference.candidate,
                                                 difference.difference, difference.lower, difference.upper) + verdict)
        }
        lines.append(String(format: "  coverage %.3f → %.3f, novelty %.2f → %.2f bits", b.coverage, c.coverage, b.novelty, c.novelty))
        lines += warnings.map { "  warning: \($0)" }
        return lines
    }
}

extension ExperimentAnalysisReport {
    public var textLines: [String] {
        var lines = ["experiment \(experiment), phase \(phase): recommendation \(recommendation.rawValue.uppercased())"]
        if let holdoutSummary { lines.append("  \(holdoutSummary)") }
        lines += reasons.map { "  - \($0)" }
        let srmState = srm.detected ? "  MISMATCH" : srm.tooSmallToJudge == true ? "  too few users to judge" : " (ok)"
        lines.append(String(format: "  SRM (%@): χ² = %.3f, p = %.3g%@", srm.method ?? "chi-squared", srm.chiSquared, srm.pValue, srmState))
        for arm in arms {
            lines.append("  arm \(arm.arm): \(arm.users) users, \(arm.exposures) exposures, \(arm.fallbackExposures) served by fallback")
        }
        for metric in metrics {
            let effect = metric.decisive
            var line = "  \(metric.role) \(metric.metric) [\(metric.arm)]: " + String(format: "%.4f → %.4f, Δ %+.4f [%+.4f, %+.4f]",
                                                                                         metric.controlValue, metric.treatmentValue,
                                                                                         effect.estimate, effect.lower, effect.upper)
            if metric.cuped != nil { line += " (CUPED)" }
            if let relative = metric.relative { line += String(format: ", lift %+.1f%%", relative.estimate * 100) }
            if let ni = metric.nonInferiority { line += ni.nonInferior ? ", non-inferior" : ", NOT shown non-inferior" } else { line += ", \(metric.verdict)" }
            lines.append(line)
        }
        if let power {
            lines.append(String(format: "  power for a %.1f%% lift in %@: %.0f%% reached; 80%% needs %@ users per arm%@", power.minimumDetectableEffect * 100,
                                power.metric, power.reached * 100, power.usersNeededPerArm.map(String.init).joined(separator: "/"),
                                power.daysRemaining.map { String(format: ", %.1f days remaining", $0) } ?? ""))
        }
        if let exploratory {
            let flagged = exploratory.filter(\.surprise)
            lines.append("  exploratory: \(exploratory.count) tests of undeclared metrics by segment, \(flagged.count) flagged for review (not part of the decision)")
            for r in flagged.prefix(5) {
                lines.append(String(format: "    %@ [%@, %@]: %.4f → %.4f (%@), q = %.2g", r.metric, r.segment, r.arm, r.controlValue, r.treatmentValue,
                                    r.relative.map { String(format: "%+.1f%%", $0 * 100) } ?? "–", r.qValue))
            }
        }
        lines += incidents.map { "  incident: \($0)" }
        return lines
    }
}
