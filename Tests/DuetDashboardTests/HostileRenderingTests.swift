import DuetCore
@testable import DuetDashboard
import DuetLab
import DuetStore
import DuetLabTestSupport
import DuetTestSupport
import Foundation
import Testing

/// Every page and report rendered with hostile values in every field a user controls, then parsed
/// by a real HTML parser (Python's, through scripts/check-html.py): no script element, event
/// handler or javascript: URL may come from the data.
@Suite struct HostileRenderingTests {
    static let hostile = [#""><script>alert(1)</script>"#, "javascript:alert(1)", #"' onmouseover='alert(1)"#,
                          #"a"b&c<d>e'f"#, "<img src=x onerror=alert(1)>", "</textarea></title><svg onload=alert(1)>"]
    static let checker = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/check-html.py")

    /// Runs the checker; returns its exit status and output.
    static func check(_ folder: URL) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", checker.path, folder.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test func theCheckerCatchesInjectedMarkup() async throws {
        try await withScratchFolder { folder in
            let unsafe = [#"<p>\#(Self.hostile[0])</p>"#, #"<a href=" javascript:alert(1)">x</a>"#, #"<b onclick="x">y</b>"#]
            for (index, page) in unsafe.enumerated() {
                let file = folder.appendingPathComponent("page\(index).html")
                try Data(page.utf8).write(to: file)
                let (status, output) = try Self.check(file)
                #expect(status == 1, "the checker missed: \(page) → \(output)")
            }
        }
    }

    @Test func everyPageAndReportEscapesHostileValues() async throws {
        try await withScratchFolder { folder in
            let fixture = try await LabFixture.make(in: folder)
            let lab = fixture.lab
            let log = try SQLiteEventLog(path: lab.home.eventLogPath.path)
            let evil = Self.hostile
            // A model with a hostile name and kind; evaluations with hostile metric names and warnings.
            let model = try #require(try await lab.registry.model(fixture.second))
            try await lab.registry.register(ModelRecord(id: "hostile-model", name: evil[0], kind: evil[2], snapshot: model.snapshot,
                                                        parent: nil, createdAt: 1))
            let (comparison, _) = try await lab.evaluate(candidate: fixture.first, baseline: "popularity", resamples: 100)
            var crafted = comparison
            crafted.differences[0].metric = evil[4]
            crafted.warnings = [evil[5]]
            try await lab.registry.add(EvaluationRecord(candidate: fixture.first, baseline: nil, baselineKind: "popularity", snapshot: evil[1],
                                                        split: evil[3], k: 10, metricsJSON: String(decoding: try JSONEncoder().encode(crafted), as: UTF8.self),
                                                        reportPath: nil, createdAt: 2))
            // Production history with a hostile actor, reason and override.
            try await lab.promote(fixture.first, actor: evil[0], reason: evil[1], override: evil[3])
            // An experiment whose hypothesis, arm names and a metric name are hostile, with traffic,
            // a fallback reason and an incident that are hostile too.
            let spec = ExperimentSpec(id: "exp", hypothesis: evil[0], arms: [ExperimentArm(name: evil[3], bundleID: fixture.first, weight: 0.5),
                                                                              ExperimentArm(name: evil[0], bundleID: fixture.second, weight: 0.5)],
                                      seed: "exp", successMetrics: ["plays_per_user", evil[4]], guardrails: [GuardrailMetric(metric: evil[5], margin: 0.1)],
                                      owner: Owner(team: "growth", contact: evil[1]), author: "carol", approvalsRequired: 0)
            try await lab.createExperiment(spec)
            try await lab.start(experiment: "exp")
            let now = Date().epochMillis
            // A catalogue genre (an item's tag) that is hostile, played before the start by every
            // user: it becomes an exploratory segment's name.
            try HomeCatalog(home: lab.home).merge([CatalogItem(id: "t-evil", title: evil[0], artist: evil[3], tags: [evil[5]])])
            _ = try await log.append(events: (0..<120).map { FeedbackEvent(user: "u\($0)", item: "t-evil", kind: .play, weight: 1, timestamp: now - 86_400_000) })
            try await LabFixture.traffic(log, spec: spec, phase: 1, users: 0..<120, at: now + 5)
            _ = try await log.append(exposures: [Exposure(requestID: "fallback-1", user: "u9999", timestamp: now + 6, items: [evil[1]], bundleID: fixture.first,
                                                          experiments: [ExperimentArmExposure(experimentID: "exp", assigned: evil[0], served: evil[3], fallbackReason: evil[2])])])
            try await lab.record(Incident(from: now - 1_000, until: now + 1, reason: evil[0], source: evil[4], createdAt: now))
            try await lab.stop(experiment: "exp")
            let analysis = try await lab.analyze(experiment: "exp", eventLog: log)
            // A review whose every text is hostile: comments, a reply, an objection overruled with a hostile reason.
            let comment = try await lab.comment(on: "exp", as: "bob", text: evil[0])
            try await lab.comment(on: "exp", as: "dave", text: evil[3], replyingTo: comment.id)
            let objection = try await lab.object(to: "exp", as: "dave", text: evil[4])
            try await lab.overrule(objection: objection.id!, of: "exp", as: "bob", reason: evil[5])
            try await lab.registry.record(Decision(experimentID: "exp", outcome: .abandon, arm: nil, reviewer: "ana", reason: evil[5],
                                                   analysisHash: analysis.hash, overrideReason: evil[2], decidedAt: now))

            let pages = DashboardPages(lab: lab, eventLog: log)
            let out = folder.appendingPathComponent("rendered")
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let signedIn = Viewer(csrf: Secrets.randomHex(), signedIn: true)
            var rendered: [(String, HTML)] = []
            for viewer in [signedIn, Viewer.readOnly] {
                let suffix = viewer.canAct ? "admin" : "read"
                rendered += [("overview-\(suffix)", try await pages.overview(viewer)), ("models-\(suffix)", try await pages.models(viewer)),
                             ("history-\(suffix)", try await pages.history(viewer)), ("evaluations-\(suffix)", try await pages.evaluations(viewer)),
                             ("experiments-\(suffix)", try await pages.experiments(viewer)), ("experiment-\(suffix)", try await pages.experiment("exp", viewer)),
                             ("decisions-\(suffix)", try await pages.decisions(viewer)), ("incidents-\(suffix)", try await pages.incidents(viewer)),
                             ("memory-\(suffix)", try await pages.memory(viewer, metric: evil[4], model: nil, owner: evil[1])),
                             ("webhooks-\(suffix)", try await pages.webhooks(viewer))]
            }
            rendered.append(("login", pages.login(failed: true)))
            for (name, page) in rendered { try Data(page.rendered.utf8).write(to: out.appendingPathComponent("\(name).html")) }
            // The Lab's own report file, as `duet lab analyze` writes it.
            try FileManager.default.copyItem(at: analysis.htmlPath, to: out.appendingPathComponent("analysis-report.html"))

            let (status, output) = try Self.check(out)
            #expect(status == 0, "\(output)")
            #expect(output.contains("\(rendered.count + 1) files"), "\(output)")
            // The values were rendered (escaped), not dropped: otherwise a clean parse proves nothing.
            let all = rendered.map(\.1.rendered).joined() + (try String(contentsOf: analysis.htmlPath, encoding: .utf8))
            for value in evil { #expect(all.contains(HTML.escape(value)), "\(value) never appeared, escaped") }
            #expect(all.contains("top genre: \(HTML.escape(evil[5]))"), "the hostile genre reached the exploratory segments")
            #expect(!all.contains("<script>alert(1)"))
        }
    }
}
