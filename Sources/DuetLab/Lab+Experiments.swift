public import DuetCore
public import DuetStore
public import Foundation

/// Where an analysis was written and what it concluded.
public struct StoredAnalysis: Sendable {
    public var report: ExperimentAnalysisReport
    public var hash: String
    public var jsonPath: URL
    public var htmlPath: URL
}

extension Lab {
    public var analysesFolder: URL { home.root.appendingPathComponent("analyses", isDirectory: true) }

    /// Creates a draft experiment after verifying every arm's bundle: a broken candidate never
    /// reaches Serve through an experiment.
    public func createExperiment(_ spec: ExperimentSpec) async throws {
        var resolved = spec
        for index in resolved.arms.indices {
            let id = try await resolveBundle(resolved.arms[index].bundleID)
            _ = try ModelBundle(folder: bundleFolder(id))
            guard try await registry.model(id) != nil else {
                throw DuetError.refused("bundle \(id.prefix(12)) is not registered; train it with --register first")
            }
            resolved.arms[index].bundleID = id
        }
        try await registry.create(resolved)
    }

    /// Creates a draft holdout: `share` of users (inside `namespace`, if given) stay on the pinned
    /// bundle (default: production now) for `days`, while everyone else gets every launch. Start it
    /// like an experiment; analyse it like one, over its whole life, to see what the launches did
    /// together. Its second arm names production at creation only for the record: Serve serves
    /// whatever production is.
    @discardableResult
    public func createHoldout(id: String, hypothesis: String, pinned reference: String = "production", share: Double, days: Int,
                              namespace: NamespaceRange? = nil, successMetrics: [String], guardrails: [GuardrailMetric] = [],
                              owner: Owner? = nil, author: String? = nil, now: Date = Date()) async throws -> ExperimentSpec {
        guard share > 0, share <= 0.5 else { throw DuetError.invalidValue(field: "share", reason: "\(share) must be in (0, 0.5]") }
        guard (1...730).contains(days) else { throw DuetError.invalidValue(field: "days", reason: "\(days) must be 1–730") }
        let pinned = try await resolveBundle(reference)
        let launches = try await registry.production().model ?? pinned
        let spec = ExperimentSpec(id: id, hypothesis: hypothesis,
                                  arms: [ExperimentArm(name: "holdout", bundleID: pinned, weight: share),
                                         ExperimentArm(name: "launches", bundleID: launches, weight: 1 - share)],
                                  namespace: namespace, successMetrics: successMetrics, guardrails: guardrails, owner: owner, author: author,
                                  approvalsRequired: 0, kind: .holdout, plannedEnd: now.epochMillis + EpochMillis(days) * 86_400_000)
        try spec.validate()
        try await createExperiment(spec)
        return spec
    }

    /// Starts a draft experiment once every arm's bundle verifies: Serve picks it up at its next poll.
    public func start(experiment id: String) async throws {
        try Identifier.validateFileSafe(id, field: "experiment id")
        guard let record = try await registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
        for arm in record.spec.arms { _ = try ModelBundle(folder: bundleFolder(arm.bundleID)) }
        try await registry.start(experiment: id)
        await notify(.experimentStarted(id))
    }

    /// Stops a running experiment: Serve drops it at its next poll, and it can then be analysed and decided.
    /// Given the event log, writes the final analysis too: the evidence as it stood when the
    /// experiment stopped, whoever decides later.
    @discardableResult
    public func stop(experiment id: String, eventLog: (any EventLog)? = nil) async throws -> StoredAnalysis? {
        try Identifier.validateFileSafe(id, field: "experiment id")
        try await registry.stop(experiment: id)
        await notify(.experimentStopped(id))
        guard let eventLog else { return nil }
        return try await analyze(experiment: id, eventLog: eventLog)
    }

    /// Changes the weights or arms of a running experiment as a new phase; every arm's bundle must verify.
    public func changePhase(of id: String, to spec: ExperimentSpec, reason: String) async throws {
        try Identifier.validateFileSafe(id, field: "experiment id")
        var resolved = spec
        for index in resolved.arms.indices {
            let bundle = try await resolveBundle(resolved.arms[index].bundleID)
            _ = try ModelBundle(folder: bundleFolder(bundle))
            resolved.arms[index].bundleID = bundle
        }
        try await registry.changePhase(of: id, to: resolved, reason: reason)
    }

    /// Records a window the analysis should exclude (an outage, a bad deploy).
    @discardableResult
    public func record(_ incident: Incident) async throws -> Int64 {
        try await registry.add(incident)
    }

    /// Analyses a phase of an experiment from a frozen read of the event log, writes the JSON and
    /// HTML reports under `analyses/`, named by the analysis id (the SHA-256 of its JSON), and
    /// returns them. The same frozen position gives the same bytes: an open phase's window ends at
    /// its newest exposure, not at the clock. CUPED's covariate comes from the `cupedDays` before
    /// the experiment's first start, the same for every phase.
    public func analyze(experiment id: String, phase requested: Int? = nil, excludeIncidents: Bool = true,
                        attributionHours: Double = 24, correction: MultipleTestingCorrection = .holm, cupedDays: Int = 14,
                        eventLog: any EventLog) async throws -> StoredAnalysis {
        try Identifier.validateFileSafe(id, field: "experiment id")
        guard (0...365).contains(cupedDays) else { throw DuetError.invalidValue(field: "cuped days", reason: "\(cupedDays) must be 0–365") }
        let (record, phase, phases) = try await startedPhase(of: id, requested)
        let incidents = try await registry.incidents()
        let data = try await experimentData(record: record, phase: phase, phases: phases, incidents: incidents, excludeIncidents: excludeIncidents,
                                            attributionHours: attributionHours, cupedDays: cupedDays, eventLog: eventLog)
        let report = ExperimentAnalyzer.analyze(record: record, phase: phase, data: data, incidents: incidents, excludeIncidents: excludeIncidents,
                                                correction: correction)
        let json = try report.canonicalJSON()
        let hash = try report.hash()
        try FileManager.default.createDirectory(at: analysesFolder, withIntermediateDirectories: true)
        let base = analysesFolder.appendingPathComponent("\(id)-phase\(phase.phase)-\(hash.prefix(12))")
        let jsonPath = base.appendingPathExtension("json"), htmlPath = base.appendingPathExtension("html")
        try json.write(to: jsonPath, options: .atomic)
        try Data(AnalysisReportHTML.render(report, hash: hash).utf8).write(to: htmlPath, options: .atomic)
        return StoredAnalysis(report: report, hash: hash, jsonPath: jsonPath, htmlPath: htmlPath)
    }

    /// A started experiment, the phase asked for (default: the current one) and all its phases.
    func startedPhase(of id: String, _ requested: Int?) async throws -> (ExperimentRecord, ExperimentPhase, [ExperimentPhase]) {
        guard let record = try await registry.experiment(id) else { throw DuetError.notFound(kind: "experiment", id: id) }
        guard record.spec.status != .draft else { throw DuetError.refused("experiment '\(id)' has not started; there is nothing to analyse") }
        let phases = try await registry.phases(of: id)
        let number = requested ?? record.phase
        guard let phase = phases.first(where: { $0.phase == number }) else {
            throw DuetError.notFound(kind: "phase", id: "\(number) of experiment '\(id)' (it has \(phases.count))")
        }
        return (record, phase, phases)
    }

    /// What the event log says about one phase: each user's arm and tallies, as the analysis reads them.
    func experimentData(record: ExperimentRecord, phase: ExperimentPhase, phases: [ExperimentPhase], incidents: [Incident],
                        excludeIncidents: Bool, attributionHours: Double, cupedDays: Int, eventLog: any EventLog) async throws -> ExperimentData {
        let firstStart = phases.map(\.startedAt).min() ?? phase.startedAt
        let cupedWindow = cupedDays > 0 ? (firstStart - EpochMillis(cupedDays) * 86_400_000)..<firstStart : nil
        let until = phase.endedAt ?? record.stoppedAt ?? Date().epochMillis
        return try await ExperimentDataReader.read(log: eventLog, experiment: record.spec.id, phase: phase.phase, from: phase.startedAt, until: until + 1,
                                                   attributionWindow: EpochMillis(attributionHours * 3_600_000),
                                                   incidents: incidents, excludeIncidents: excludeIncidents, cupedWindow: cupedWindow,
                                                   itemGenres: itemGenres())
    }

    /// Each catalogue item's first tag, its genre for the exploratory segments; empty without a catalogue.
    func itemGenres() -> [String: String] {
        let items = (try? HomeCatalog(home: home).load()) ?? []
        var genres: [String: String] = [:]
        for item in items { if let genre = item.tags.first { genres[item.id] = genre } }
        return genres
    }

    /// The newest stored analysis of an experiment, if any.
    public func latestAnalysis(of id: String) throws -> (ExperimentAnalysisReport, String)? {
        guard let newest = try storedAnalyses(of: id).first else { return nil }
        let report = try ExperimentAnalysisReport.decode(try Data(contentsOf: newest.json))
        return (report, try report.hash())
    }

    /// Every stored analysis of the experiment, newest first: its phase, id prefix (12 hex digits),
    /// when it was written, and its files.
    public func storedAnalyses(of id: String) throws -> [(phase: Int, id: String, written: Date, json: URL)] {
        try Identifier.validateFileSafe(id, field: "experiment id")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: analysesFolder.path)) ?? []
        var found: [(phase: Int, id: String, written: Date, json: URL)] = []
        for name in names where name.hasPrefix("\(id)-phase") && name.hasSuffix(".json") {
            // <experiment>-phase<N>-<12 hex>.json, exactly: "exp" must not pick up "exp-phase2-test"'s files.
            let rest = name.dropFirst(id.count + "-phase".count).dropLast(".json".count)
            let parts = rest.split(separator: "-")
            guard parts.count == 2, let phase = Int(parts[0]), parts[1].count == 12, parts[1].allSatisfy(\.isHexDigit) else { continue }
            let url = analysesFolder.appendingPathComponent(name)
            let written = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date ?? .distantPast
            found.append((phase, String(parts[1]), written, url))
        }
        return found.sorted { ($0.written, $0.id) > ($1.written, $1.id) }
    }

    /// A stored analysis by its id prefix (at least 12 hex digits).
    public func storedAnalysis(of id: String, prefix: String) throws -> (ExperimentAnalysisReport, String)? {
        guard prefix.count >= 12, let match = try storedAnalyses(of: id).first(where: { prefix.lowercased().hasPrefix($0.id) }) else { return nil }
        let report = try ExperimentAnalysisReport.decode(try Data(contentsOf: match.json))
        let hash = try report.hash()
        return hash.hasPrefix(prefix.lowercased()) ? (report, hash) : nil
    }

    /// Records a reviewed decision resting on the experiment's latest analysis. Deciding against the
    /// analysis' recommendation needs an override reason, which is recorded too.
    /// `shown` is the analysis the reviewer read (the CLI's --analysis; the dashboard's form carries
    /// the one on the page): a newer one since means the decision would rest on evidence nobody
    /// reviewed, so it is refused.
    public func decide(experiment id: String, outcome: DecisionOutcome, arm: String?, reviewer: String, reason: String,
                       overrideReason: String?, shown: String? = nil) async throws -> (Int64, Decision) {
        guard let (report, hash) = try latestAnalysis(of: id) else {
            throw DuetError.refused("refused: experiment '\(id)' has no analysis yet; run `duet lab analyze \(id)` first, so the decision rests on evidence")
        }
        if let shown, !(shown.count >= 12 && hash.hasPrefix(shown.lowercased())) {
            throw DuetError.refused("refused: the decision names analysis \(shown.prefix(16)), but the newest is \(hash.prefix(16)); review it before deciding")
        }
        if outcome != .abandon, outcome != report.recommendation.outcome, overrideReason == nil {
            throw DuetError.refused("refused: the analysis recommends \(report.recommendation.rawValue) (\(report.reasons.first ?? "")); deciding \(outcome.rawValue) needs --override \"why\"")
        }
        var shipped = arm
        if outcome == .ship, shipped == nil {
            let better = report.metrics.filter { $0.role == "success" && $0.verdict == "better" }.map(\.arm)
            shipped = better.first ?? report.arms.dropFirst().first?.arm
        }
        let decision = Decision(experimentID: id, outcome: outcome, arm: outcome == .ship ? shipped : nil, reviewer: reviewer, reason: reason,
                                analysisHash: hash, overrideReason: overrideReason, decidedAt: Date().epochMillis)
        if let record = try await registry.experiment(id), record.spec.status == .running {
            if record.spec.requiredApprovals > 0 {
                throw DuetError.refused("refused: experiment '\(id)' is running; stop it, and it needs \(record.spec.requiredApprovals) approval(s) in review before a decision")
            }
            try await registry.stop(experiment: id)
            await notify(.experimentStopped(id))
        }
        let decisionID = try await registry.record(decision)
        // The registry filled in the approvers and dissent.
        let recorded = try await registry.decisions(experiment: id).first { $0.id == decisionID }?.decision ?? decision
        await notify(.decision(id: decisionID, recorded))
        return (decisionID, recorded)
    }
}
