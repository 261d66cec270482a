import DuetCore
import DuetStore
import Foundation

extension DemoStory {
    /// Steps 11 and 12: a refresh that passes its gate and ramps to 100%, then a refresh on corrupted
    /// data that passes the same gate and is rolled back by the rollout guard at its first stage.
    func refreshLane(recipe: String, log: any EventLog) async throws {
        step(11, "The refresh lane: production's recipe retrained on newer data, gated offline, rolled out 5% → 25% → 100%")
        let good = try await lab.refresh(recipe: recipe, actor: "ana", eventLog: log)
        print("   (the gate's held-out feedback followed production's own lists, which favours production; the recipe's margin allows for it)")
        describe(good)
        guard let rollout = good.rollout else {
            // The rest of the story (the rollout, the bad refresh, the shadow) rests on this step: a
            // demo that skipped it and exited 0 would hide the regression that caused it.
            throw DuetError.refused("the demo's routine refresh failed its offline gate (\(good.gate.summary)); steps 11–13 cannot run")
        }
        var first = 0
        while try await lab.rollout(rollout.id).status.isActive {
            try await waitForRegistry()
            let traffic = try await simulate(firstUser: first, users: 800, quiet: true)
            first += 800
            let judgement = try await lab.judge(rollout: rollout.id, eventLog: log)
            print("   \(traffic.requests) requests, \(traffic.non2xx + traffic.transportErrors) non-2xx; the guard: \(judgement.summary)")
        }
        let production = try await lab.registry.production()
        try await waitUntilReady(generation: production.generation)
        for line in try await lab.lineage(production.model ?? "").prefix(2) {
            print("   lineage: \(line.model.id.prefix(12)) \(line.model.name) by \(line.model.recipe ?? "no recipe"), snapshot \(line.model.snapshot.prefix(12)), parent \(line.model.parent?.prefix(12) ?? "none")")
        }

        step(12, "A bad refresh: item labels shuffled upstream. The offline gate on the same data cannot see it; the rollout guard rolls it back at 5%")
        let bad = try await lab.refresh(recipe: recipe, actor: "ana", eventLog: log) { [lab] frozen in
            try lab.shuffledItems(of: frozen, seed: 99)
        }
        describe(bad)
        guard let badRollout = bad.rollout else {
            print("   the gate caught it offline this time; nothing reached listeners")
            return
        }
        var served = 0, failed = 0
        while try await lab.rollout(badRollout.id).status.isActive {
            try await waitForRegistry()
            let traffic = try await simulate(firstUser: first, users: 800, quiet: true)
            first = (first + 800) % max(users - 800, 1)
            served += traffic.requests
            failed += traffic.non2xx + traffic.transportErrors
            let judgement = try await lab.judge(rollout: badRollout.id, eventLog: log)
            print("   \(traffic.requests) requests, \(traffic.non2xx + traffic.transportErrors) non-2xx; the guard: \(judgement.summary)")
            if let path = judgement.analysisPath, judgement.action == .rollBack { print("   the breach's analysis: \(path.path)") }
        }
        try await waitForRegistry()
        let after = try await lab.registry.production()
        print("   production stays \(after.model?.prefix(12) ?? "—") (generation \(after.generation)); \(served) requests during the bad rollout, \(failed) non-2xx")
        for event in try await lab.registry.rolloutEvents(of: badRollout.id) {
            print("   \(event.action.rawValue) at \(String(format: "%g%%", event.share * 100)) by \(event.actor)\(event.analysisHash.map { " [analysis \($0.prefix(12))]" } ?? "")")
        }
        // A shadow shows the same fault with no listener seeing it: the candidate's lists, never served.
        let shadow = try await lab.startShadow(candidate: bad.bundle, share: 0.2, actor: "ana", id: "shadow-bad-refresh")
        try await waitForRegistry()
        let listeners = 400
        let shadowed = try await simulate(firstUser: first, users: listeners, quiet: true)
        try await Task.sleep(for: .milliseconds(600)) // Serve stores shadow lists every 200 ms
        try await lab.stopShadow(shadow.id)
        print("   shadowed on 20% of the recommendations \(listeners) more listeners got (\(shadowed.non2xx + shadowed.transportErrors) non-2xx), never shown:")
        for line in try await lab.shadowReport(shadow.id, eventLog: log).textLines { print("   " + line) }
    }

    func describe(_ run: RefreshRun) {
        let reasons = run.separation.excluded.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("   froze \(run.snapshot.hash.prefix(12)) (\(run.snapshot.interactions) interactions); left out \(run.separation.excludedTotal) feedback events on lists production did not serve\(reasons.isEmpty ? "" : ": \(reasons)")")
        print("   trained \(run.bundle.prefix(12)) by \(run.recipe.reference) on \(run.split.id); \(run.gate.summary)")
        if let rollout = run.rollout { print("   rollout \(rollout.id) started at \(String(format: "%g%%", rollout.share * 100)) by \(rollout.actor), no experiment or decision needed") }
    }

    /// Waits until Serve's state is built from the registry's current version, so traffic sees the newest stage.
    func waitForRegistry() async throws {
        let version = try await lab.registry.servingVersion()
        for _ in 0..<300 {
            if let reply = try? await getJSON("readyz"), let seen = reply["registryVersion"] as? Int, seen >= version { return }
            guard server?.isRunning ?? false else { throw DuetError.refused("duet serve exited; see \(root.appendingPathComponent("serve.log").path)") }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw DuetError.refused("Serve did not reach registry version \(version) within 30 s")
    }
}
