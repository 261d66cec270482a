public import DuetCore
public import DuetStore
public import Foundation

/// The refresh lane's offline gate: the refresh against production on the same frozen data.
public struct RefreshGate: Sendable {
    public var metric: PairedDifference
    public var margin: Double
    public var evaluationID: Int64?
    /// The lower end of the paired 95% interval is above −margin: not worse beyond the margin.
    public var passed: Bool { metric.lower > -margin }

    public var summary: String {
        String(format: "%@ %@: refresh %.4f vs production %.4f, Δ %+.4f [%+.4f, %+.4f]; the lower end must stay above −%.4f",
               passed ? "gate passed" : "gate FAILED", metric.metric, metric.candidate, metric.baseline, metric.difference,
               metric.lower, metric.upper, margin)
    }
}

/// One run of the refresh lane.
public struct RefreshRun: Sendable {
    public var recipe: Recipe
    public var snapshot: SnapshotInfo
    public var separation: FeedbackSeparation
    public var split: SplitRecord
    public var bundle: String
    public var gate: RefreshGate
    /// Started when the gate passed.
    public var rollout: Rollout?
}

extension Lab {
    /// The refresh lane for a recipe whose model is in production: freeze the newest window, train on
    /// all of it but the held-out tail, evaluate against production on that tail without the pairs
    /// production's snapshot holds (data neither model trained on), and, when the non-regression gate passes, start a staged rollout. No experiment and
    /// no decision: the recipe's refresh policy allows the lane, and the evidence is in the registry.
    /// A refresh that fails its gate is rejected and never serves.
    ///
    /// `beforeTraining` may replace the frozen snapshot (by hash) before training: the demo uses it to
    /// inject a data fault that an offline gate cannot see.
    public func refresh(recipe reference: String, actor: String, eventLog: any EventLog, until: Date = Date(), rolloutID: String? = nil,
                        beforeTraining: ((SnapshotInfo) throws -> SnapshotInfo)? = nil) async throws -> RefreshRun {
        let recipe = try await self.recipe(reference)
        // Refused before the freeze and training, not after: the registry refuses an unknown actor too.
        guard try await registry.people().contains(where: { $0.name == actor }) else { throw RegistryRules.unregistered(actor) }
        guard let policy = recipe.refresh else {
            throw DuetError.refused("refused: recipe \(recipe.reference) has no refresh policy; its models go through an experiment (`duet lab recipe add \(recipe.name) … --refresh` allows the lane)")
        }
        guard let production = try await registry.production().model, let producing = try await registry.model(production) else {
            throw DuetError.refused("refused: nothing is in production yet; promote a first model of recipe \(recipe.name) through the new-model lane")
        }
        var producedBy: Recipe?
        if let reference = producing.recipe { producedBy = try await self.recipe(reference) }
        guard let producedBy, producedBy.name == recipe.name, producedBy.sameMethod(as: recipe) else {
            let what = producedBy.map { "recipe \($0.reference)" } ?? "no recipe"
            throw DuetError.refused("refused: production \(production.prefix(12)) was made by \(what), not by \(recipe.reference)'s method; a new recipe is a new model and goes through an experiment, a decision and then promotion")
        }
        if let active = try await activeRollout() {
            throw DuetError.refused("refused: rollout '\(active.id)' is still active; one rollout at a time moves production")
        }
        var (snapshot, separation) = try await freeze(for: recipe, eventLog: eventLog, until: until.epochMillis)
        if let beforeTraining { snapshot = try beforeTraining(snapshot) }
        guard let last = snapshot.lastEvent else { throw DuetError.emptyInput(path: "snapshot \(snapshot.hash.prefix(12))", reason: "it has no timestamps") }
        // Hold out the window's tail, and never anything production trained on: the gate judges both on new data.
        let productionEnd = (try? snapshots.info(producing.snapshot))?.lastEvent ?? 0
        let cutoff = max(last - EpochMillis(policy.holdoutHours) * 3_600_000, productionEnd + 1)
        guard cutoff <= last else {
            throw DuetError.refused("refused: no event is newer than production's snapshot \(producing.snapshot.prefix(12)) (its last event is \(TimestampParser.iso8601String(productionEnd))); there is nothing new to refresh on")
        }
        let split = try self.split(snapshot: snapshot.hash, method: .temporal(cutoff: cutoff))
        let bundle = try await train(recipe: recipe, snapshot: snapshot.hash, split: split.id, parent: production)
        let (comparison, evaluationID) = try await evaluate(candidate: bundle, baseline: production, threads: ProcessInfo.processInfo.activeProcessorCount,
                                                            unseenBy: producing.snapshot)
        guard let metric = comparison.differences.first(where: { $0.metric.hasPrefix("\(policy.metric)@") }) else {
            throw DuetError.refused("refused: the gate evaluation has no \(policy.metric) result")
        }
        let gate = RefreshGate(metric: metric, margin: policy.margin, evaluationID: evaluationID)
        var run = RefreshRun(recipe: recipe, snapshot: snapshot, separation: separation, split: split, bundle: bundle, gate: gate)
        guard gate.passed else {
            try await registry.setStatus(.rejected, of: bundle)
            return run
        }
        let reason = "refresh of \(recipe.reference) on snapshot \(snapshot.hash.prefix(12)); evaluation #\(evaluationID ?? 0): \(gate.summary)"
        run.rollout = try await startRollout(candidate: bundle, lane: .refresh, stages: policy.stages, actor: actor, reason: reason, id: rolloutID)
        return run
    }

    /// Runs the refresh lane every `interval`, at most one run at a time across every machine sharing
    /// the registry (a lock held while the lane and its rollout run), until cancelled.
    public func refreshEvery(_ interval: Duration, recipe reference: String, actor: String, eventLog: any EventLog, judgeEvery: Duration,
                             report: @escaping (String) -> Void) async throws {
        let holder = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"
        let lock = "refresh:\(Recipe.parseReference(reference).name)"
        let lease = max(60, Int(judgeEvery.components.seconds) * 3)
        while !Task.isCancelled {
            if try await registry.acquireLock(lock, holder: holder, seconds: lease) {
                do {
                    let run = try await refresh(recipe: reference, actor: actor, eventLog: eventLog)
                    report(run.gate.summary)
                    // Judged until it ends, renewing the lock at every look so no other machine starts a run meanwhile.
                    while let rollout = run.rollout {
                        let judgement = try await judge(rollout: rollout.id, eventLog: eventLog)
                        report(judgement.summary)
                        guard judgement.rollout.status.isActive else { break }
                        _ = try await registry.acquireLock(lock, holder: holder, seconds: lease)
                        try await Task.sleep(for: judgeEvery)
                    }
                } catch {
                    report("refresh failed: \(error)")
                }
                try await registry.releaseLock(lock, holder: holder)
            } else {
                report("another machine holds \(lock); skipping this run")
            }
            try await Task.sleep(for: interval)
        }
    }

    /// A copy of a snapshot with its item labels permuted: every interaction is kept, attached to the
    /// wrong item. It models an upstream join bug that an offline gate on the same data cannot see.
    public func shuffledItems(of info: SnapshotInfo, seed: UInt64) throws -> SnapshotInfo {
        let snapshot = try snapshots.open(info.hash)
        var generator = SplitMix64(seed: seed)
        var permutation = Array(0..<snapshot.itemCount)
        permutation.shuffle(using: &generator)
        let builder = SnapshotBuilder()
        for user in 0..<snapshot.userCount {
            let id = snapshot.userID(user)
            for position in snapshot.row(user) {
                builder.add(user: id, item: snapshot.itemID(permutation[Int(snapshot.items[position])]), weight: snapshot.weights[position],
                            timestamp: snapshot.times[position])
            }
        }
        var tally = ReadTally()
        tally.rowsRead = snapshot.interactionCount
        return try snapshots.freeze(builder, source: "\(info.source), item labels shuffled (seed \(seed))", format: "events",
                                    kinds: info.kinds.map { Set($0.map { EventKind(rawValue: $0) }) }, tally: tally,
                                    catalog: try HomeCatalog(home: home).load())
    }
}
