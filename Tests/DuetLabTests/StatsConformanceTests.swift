import DuetLab
import DuetTestSupport
import Foundation
import Testing

/// Every case of ../shared/conformance/stats-cases.json to 1e-6 relative; skipped when absent.
@Suite struct StatsConformanceTests {
    static let file = "conformance/stats-cases.json"

    /// Compares computed with expected, recursively; numbers to 1e-6 relative (absolute near zero).
    static func mismatches(_ computed: Any?, _ expected: Any?, path: String) -> [String] {
        switch (computed, expected) {
        case let (c as [String: Any], e as [String: Any]):
            return e.keys.sorted().flatMap { mismatches(c[$0], e[$0], path: "\(path).\($0)") }
        case let (c as [Any], e as [Any]):
            guard c.count == e.count else { return ["\(path): \(c.count) values vs \(e.count)"] }
            return zip(c, e).enumerated().flatMap { mismatches($1.0, $1.1, path: "\(path)[\($0)]") }
        case let (c, e) where isBool(e):
            return (c as? Bool) == (e as? Bool) ? [] : ["\(path): \(String(describing: c)) vs \(String(describing: e))"]
        case let (c as NSNumber, e as NSNumber):
            let a = c.doubleValue, b = e.doubleValue
            let ok = a == b || abs(a - b) <= 1e-6 * max(abs(a), abs(b)) || (abs(b) < 1e-12 && abs(a - b) < 1e-12)
            return ok ? [] : ["\(path): \(a) vs expected \(b)"]
        case (nil, _):
            return ["\(path): not computed"]
        default:
            return ["\(path): \(String(describing: computed)) vs \(String(describing: expected))"]
        }
    }

    /// JSON booleans, which Foundation may hand over as Bool or as a boolean NSNumber.
    static func isBool(_ value: Any?) -> Bool {
        guard let value else { return false }
        if type(of: value) == Bool.self { return true }
        if let number = value as? NSNumber { return String(cString: number.objCType) == "c" && (number == true || number == false) && "\(number)" != "1" && "\(number)" != "0" }
        return false
    }

    @Test(.enabled(if: SharedData.exists(file), "needs ../shared/conformance/stats-cases.json"))
    func everyCaseMatches() throws {
        let data = try Data(contentsOf: SharedData.file(Self.file))
        let expected = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let computed = try StatsCases.compute(data)
        var cases = 0
        for section in StatsCases.sections {
            let want = try #require(expected[section] as? [[String: Any]], "section \(section)")
            let got = try #require(computed[section] as? [[String: Any]])
            for (index, (g, w)) in zip(got, want).enumerated() {
                cases += 1
                let problems = Self.mismatches(g["expected"], w["expected"], path: "\(section)[\(index)]")
                #expect(problems.isEmpty, "\(problems.joined(separator: "; "))")
            }
        }
        #expect(cases >= 30)
    }

    @Test func multipleComparisonAdjustments() {
        let p = [0.01, 0.04, 0.03, 0.005]
        // Holm: sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1 with running max.
        #expect(ABStatistics.holm(p).map { ($0 * 1e6).rounded() / 1e6 } == [0.03, 0.06, 0.06, 0.02])
        // BH: sorted descending 0.04·4/4, 0.03·4/3, 0.01·4/2, 0.005·4/1 with running min.
        #expect(ABStatistics.benjaminiHochberg(p).map { ($0 * 1e6).rounded() / 1e6 } == [0.02, 0.04, 0.04, 0.02])
    }

    @Test func distributionsMatchKnownValues() {
        #expect(abs(Distributions.normalQuantile(0.975) - 1.959963984540054) < 1e-12)
        #expect(abs(Distributions.studentTQuantile(0.975, df: 10) - 2.228138851986274) < 1e-9)
        #expect(abs(Distributions.chiSquaredSurvival(3.841458820694124, df: 1) - 0.05) < 1e-12)
        #expect(abs(Distributions.studentTSurvival(2.0, df: 5) - 0.05096973941492914) < 1e-12)
    }
}
