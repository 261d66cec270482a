import DuetCore
import DuetLab
import DuetServe
import DuetStore
import DuetLabTestSupport
import DuetTestSupport
import Foundation
import Hummingbird
import DuetHTTPTestSupport
import NIOCore
import Testing

/// /metrics follows Prometheus' conventions: HELP and TYPE for every metric, `_total` on counters,
/// units in names, a build-info metric, and exposures per experiment arm for a live SRM alert.
/// (CI also parses it with prometheus_client's parser: scripts/metrics-check.py.)
@Suite struct MetricsConventionTests {
    @Test func everyMetricHasHelpTypeAndConventionalName() async throws {
        try await withScratchFolder { folder in
            let fixture = try await ServeFixture.make(in: folder)
            try await fixture.lab.lab.createExperiment(ExperimentSpec(id: "exp", hypothesis: "h",
                arms: [ExperimentArm(name: "control", bundleID: fixture.lab.first, weight: 0.5), ExperimentArm(name: "treatment", bundleID: fixture.lab.second, weight: 0.5)],
                seed: "exp", successMetrics: ["plays_per_user"]))
            try await fixture.lab.lab.start(experiment: "exp")
            #expect(await fixture.components.reloader.reloadIfChanged())
            let text = try await fixture.app.test(.inProcess) { client in
                for user in 0..<40 { _ = try await client.execute(uri: "/v1/users/u\(user)/recommendations?n=3", method: .get) }
                _ = try await client.execute(uri: "/v1/items/nope/similar", method: .get)
                _ = try await client.execute(uri: "/v1/events", method: .post, body: ByteBuffer(string: #"[{"user":"u1","item":"t1","timestamp":1}]"#))
                return try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            }
            var help: [String: String] = [:], types: [String: String] = [:]
            var samples: [(name: String, labels: String, value: Double)] = []
            for line in text.split(separator: "\n") {
                if line.hasPrefix("# HELP ") {
                    let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                    help[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
                } else if line.hasPrefix("# TYPE ") {
                    let parts = line.dropFirst(7).split(separator: " ")
                    types[String(parts[0])] = String(parts[1])
                } else if !line.hasPrefix("#") {
                    let name = String(line.prefix { $0 != "{" && $0 != " " })
                    // Up to the last '}': a route label holds braces of its own (`/v1/users/{user}/…`).
                    let labels = line.contains("{") ? String(line[line.firstIndex(of: "{")!...line.lastIndex(of: "}")!]) : ""
                    samples.append((name, labels, Double(line.split(separator: " ").last ?? "") ?? .nan))
                }
            }
            #expect(types.count >= 15, "expected Serve's metrics, found \(types.keys.sorted())")
            for (name, type) in types {
                #expect(help[name]?.isEmpty == false, "\(name) has no HELP")
                #expect(name.range(of: #"^[a-zA-Z_:][a-zA-Z0-9_:]*$"#, options: .regularExpression) != nil, "\(name) is not a valid name")
                if type == "counter" { #expect(name.hasSuffix("_total"), "counter \(name) lacks _total") }
                if type == "histogram" || type == "summary" { #expect(name.hasSuffix("_seconds"), "\(type) \(name) has no unit") }
            }
            #expect(types["http_server_request_duration_seconds"] == "histogram")
            // Millisecond answers need buckets under the library's first (5 ms) to show a p99 against a 2 ms goal.
            let bounds = Set(samples.filter { $0.name == "http_server_request_duration_seconds_bucket" && $0.labels.contains("recommendations") }
                .compactMap { sample in sample.labels.range(of: #"le="[^"]+""#, options: .regularExpression).map { String(sample.labels[$0]) } })
            #expect([#"le="0.00025""#, #"le="0.001""#, #"le="0.002""#].allSatisfy(bounds.contains), "\(bounds.sorted())")
            #expect(samples.contains { $0.name == "duet_build_info" && $0.labels.contains(#"version="\#(DuetBuild.version)""#) && $0.value == 1 })
            let arms = samples.filter { $0.name == "duet_experiment_exposures_total" && $0.labels.contains(#"experiment="exp""#) }
            #expect(arms.count == 2 && arms.reduce(0) { $0 + $1.value } == 40, "one series per arm, every exposure counted: \(arms)")
        }
    }
}
