import DuetCore
import DuetTestSupport
import Foundation
import Testing

/// GrowthBook's cross-SDK vectors (spec 0.8.0), read from ../shared; skipped when absent.
@Suite struct GrowthBookConformanceTests {
    static let available = SharedData.exists(SharedData.growthBookCases)

    static func cases() throws -> [String: Any] {
        let data = try Data(contentsOf: SharedData.file(SharedData.growthBookCases))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func number(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }

    static func ranges(_ value: Any?) throws -> [Range<Double>] {
        let pairs = try #require(value as? [[Any]])
        return try pairs.map { pair in
            let low = try #require(number(pair[0]))
            let high = try #require(number(pair[1]))
            return low..<high
        }
    }

    @Test(.enabled(if: available, "needs ../shared/conformance/growthbook-cases.json"))
    func hash() throws {
        let cases = try #require(try Self.cases()["hash"] as? [[Any]])
        #expect(cases.count > 10)
        for row in cases {
            let seed = try #require(row[0] as? String)
            let value = try #require(row[1] as? String)
            let version = try #require(row[2] as? Int)
            let actual = Assignment.hash(seed: seed, value: value, version: version)
            if let expected = Self.number(row[3]) {
                let got = try #require(actual, "hash(\(seed), \(value), v\(version)) returned nil")
                #expect(abs(got - expected) < 1e-9, "hash(\(seed), \(value), v\(version)) = \(got), expected \(expected)")
            } else {
                #expect(actual == nil, "hash v\(version) must be nil")
            }
        }
    }

    @Test(.enabled(if: available, "needs ../shared/conformance/growthbook-cases.json"))
    func bucketRanges() throws {
        let cases = try #require(try Self.cases()["getBucketRange"] as? [[Any]])
        #expect(!cases.isEmpty)
        for row in cases {
            let name = try #require(row[0] as? String)
            let arguments = try #require(row[1] as? [Any])
            let count = try #require(arguments[0] as? Int)
            let coverage = try #require(Self.number(arguments[1]))
            let weights = (arguments[2] as? [Any])?.compactMap(Self.number)
            let expected = try Self.ranges(row[2])
            let actual = Assignment.bucketRanges(count: count, coverage: coverage, weights: weights)
            #expect(actual.count == expected.count, "\(name)")
            for (got, want) in zip(actual, expected) {
                #expect(abs(got.lowerBound - want.lowerBound) < 1e-9 && abs(got.upperBound - want.upperBound) < 1e-9,
                        "\(name): got \(got), expected \(want)")
            }
        }
    }

    @Test(.enabled(if: available, "needs ../shared/conformance/growthbook-cases.json"))
    func chooseVariation() throws {
        let cases = try #require(try Self.cases()["chooseVariation"] as? [[Any]])
        #expect(!cases.isEmpty)
        for row in cases {
            let name = try #require(row[0] as? String)
            let n = try #require(Self.number(row[1]))
            let expected = try #require(row[3] as? Int)
            let actual = Assignment.chooseArm(n, ranges: try Self.ranges(row[2])) ?? -1
            #expect(actual == expected, "\(name)")
        }
    }

    @Test(.enabled(if: available, "needs ../shared/conformance/growthbook-cases.json"))
    func inNamespace() throws {
        let cases = try #require(try Self.cases()["inNamespace"] as? [[Any]])
        #expect(!cases.isEmpty)
        for row in cases {
            let name = try #require(row[0] as? String)
            let user = try #require(row[1] as? String)
            let spec = try #require(row[2] as? [Any])
            let namespace = NamespaceRange(id: try #require(spec[0] as? String), start: try #require(Self.number(spec[1])),
                                           end: try #require(Self.number(spec[2])))
            let expected = try #require(row[3] as? Bool)
            #expect(Assignment.inNamespace(user: user, namespace: namespace) == expected, "\(name)")
        }
    }

    @Test(.enabled(if: available, "needs ../shared/conformance/growthbook-cases.json"))
    func equalWeights() throws {
        let cases = try #require(try Self.cases()["getEqualWeights"] as? [[Any]])
        #expect(!cases.isEmpty)
        for row in cases {
            let count = try #require(row[0] as? Int)
            let expected = try #require(row[1] as? [Any]).compactMap(Self.number)
            let actual = Assignment.equalWeights(count)
            #expect(actual.count == expected.count)
            // The vectors hold weights floored to 8 decimals, as GrowthBook's own test compares them.
            for (got, want) in zip(actual, expected) { #expect((got * 1e8).rounded(.down) / 1e8 == want, "equalWeights(\(count))") }
        }
    }
}

@Suite struct AssignmentTests {
    @Test func fnvMatchesReferenceValues() {
        // FNV-1a 32 reference values (Fowler/Noll/Vo test suite).
        #expect(Assignment.fnv1a32("") == 0x811C_9DC5)
        #expect(Assignment.fnv1a32("a") == 0xE40C_292C)
        #expect(Assignment.fnv1a32("foobar") == 0xBF9C_F968)
    }

    @Test(arguments: [[0.5, 0.5], [0.2, 0.3, 0.5], [0.1, 0.9]])
    func splitFollowsWeights(weights: [Double]) {
        var counts = [Int](repeating: 0, count: weights.count)
        let users = 100_000
        for user in 0..<users {
            let arm = Assignment.arm(seed: "exp-split", user: "user-\(user)", weights: weights, coverage: 1)
            if let arm { counts[arm] += 1 }
        }
        #expect(counts.reduce(0, +) == users, "full coverage assigns everyone")
        for (count, weight) in zip(counts, weights) {
            let share = Double(count) / Double(users)
            #expect(abs(share - weight) < 0.01, "share \(share) vs weight \(weight)")
        }
    }

    @Test func coverageLeavesUsersOutWithoutMovingOthers() {
        let weights = [0.5, 0.5]
        var moved = 0, included = 0
        for user in 0..<20_000 {
            let full = Assignment.arm(seed: "cov", user: "\(user)", weights: weights, coverage: 1)
            if let partial = Assignment.arm(seed: "cov", user: "\(user)", weights: weights, coverage: 0.3) {
                included += 1
                if partial != full { moved += 1 }
            }
        }
        #expect(moved == 0)
        #expect(abs(Double(included) / 20_000 - 0.3) < 0.02)
    }

    @Test func experimentAssignsThroughNamespace() throws {
        let spec = ExperimentSpec(id: "exp1", hypothesis: "better", arms: [
            ExperimentArm(name: "control", bundleID: "a", weight: 0.5),
            ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5),
        ], namespace: NamespaceRange(id: "home", start: 0, end: 0.5), successMetrics: ["plays"])
        try spec.validate()
        var inside = 0
        for user in 0..<10_000 {
            let arm = spec.assignedArm(for: "u\(user)")
            let inNamespace = Assignment.inNamespace(user: "u\(user)", namespace: spec.namespace!)
            #expect((arm != nil) == inNamespace)
            if arm != nil { inside += 1 }
        }
        #expect(abs(Double(inside) / 10_000 - 0.5) < 0.03)
    }

    /// With the id as seed, anyone who reads a response's experiment id could search for user ids
    /// that land in the arm they want. The default seed is a secret nobody outside the Lab sees.
    @Test func aNewExperimentGetsASecretRandomSeedUnlessOneIsGiven() throws {
        let arms = [ExperimentArm(name: "control", bundleID: "a", weight: 0.5), ExperimentArm(name: "treatment", bundleID: "b", weight: 0.5)]
        let first = ExperimentSpec(id: "exp1", hypothesis: "better", arms: arms, successMetrics: ["plays"])
        let second = ExperimentSpec(id: "exp1", hypothesis: "better", arms: arms, successMetrics: ["plays"])
        #expect(first.seed != "exp1" && first.seed != second.seed)
        #expect(first.seed.count == 32 && first.seed.allSatisfy(\.isHexDigit))
        // Two specs differing only in their seed put users in different arms (the seed is what decides).
        let moved = (0..<2_000).filter { first.assignedArm(for: "u\($0)")?.name != second.assignedArm(for: "u\($0)")?.name }.count
        #expect(moved > 700, "about half the users change arm between independent seeds; \(moved) did")
        let explicit = ExperimentSpec(id: "exp1", hypothesis: "better", arms: arms, seed: "exp1", successMetrics: ["plays"])
        #expect(explicit.seed == "exp1")
        #expect(explicit.assignedArm(for: "u7")?.name == Assignment.arm(seed: "exp1", user: "u7", weights: [0.5, 0.5], coverage: 1, namespace: nil).map { arms[$0].name })
    }
}
