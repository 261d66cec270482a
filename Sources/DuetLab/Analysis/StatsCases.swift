import DuetCore
public import Foundation

/// Reads a file shaped like `stats-cases.json` (any subset of its sections) and computes every
/// case, returning the same structure with each case's `expected` replaced by computed values.
public enum StatsCases {
    public static let sections = ["welch", "relative", "srm", "cuped", "ratio", "sequential", "noninferiority"]

    public static func compute(_ data: Data) throws -> [String: Any] {
        guard let document = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DuetError.invalidValue(field: "stats file", reason: "the top level must be a JSON object")
        }
        var output = document
        for section in sections {
            guard let value = document[section] else { continue }
            guard let cases = value as? [[String: Any]] else {
                throw DuetError.invalidValue(field: section, reason: "must be an array of cases")
            }
            output[section] = try cases.enumerated().map { index, entry in
                var computed = entry
                do { computed["expected"] = try compute(section: section, entry) } catch let error as DuetError {
                    throw DuetError.invalidValue(field: "\(section)[\(index)]", reason: error.description)
                }
                return computed
            }
        }
        return output
    }

    static func number(_ entry: [String: Any], _ key: String) throws -> Double {
        guard let value = (entry[key] as? NSNumber)?.doubleValue else { throw DuetError.invalidValue(field: key, reason: "a number is required") }
        return value
    }

    static func decode<T: Decodable>(_ type: T.Type, _ entry: [String: Any], _ key: String) throws -> T {
        guard let object = entry[key] else { throw DuetError.invalidValue(field: key, reason: "is missing") }
        do {
            return try JSONDecoder().decode(T.self, from: try JSONSerialization.data(withJSONObject: object))
        } catch {
            throw DuetError.invalidValue(field: key, reason: DecodingProblem.describe(error))
        }
    }

    static func compute(section: String, _ entry: [String: Any]) throws -> [String: Any] {
        let alpha = (entry["alpha"] as? NSNumber)?.doubleValue ?? 0.05
        switch section {
        case "welch":
            let r = ABStatistics.welch(control: try decode(MeanStatistics.self, entry, "control"),
                                       treatment: try decode(MeanStatistics.self, entry, "treatment"), alpha: alpha)
            return ["difference": r.estimate, "standard_error": r.standardError, "df": r.degreesOfFreedom ?? 0,
                    "t": r.standardError > 0 ? r.estimate / r.standardError : 0, "p_value": r.pValue, "ci": [r.lower, r.upper]]
        case "relative":
            let r = ABStatistics.relativeLift(control: try decode(MeanStatistics.self, entry, "control"),
                                              treatment: try decode(MeanStatistics.self, entry, "treatment"), alpha: alpha)
            return ["lift": r.estimate, "standard_error": r.standardError, "p_value": r.pValue, "ci": [r.lower, r.upper]]
        case "srm":
            let r = ABStatistics.sampleRatioMismatch(counts: try decode([Int].self, entry, "counts"),
                                                     weights: try decode([Double].self, entry, "weights"))
            return ["chi2": r.chiSquared, "p_value": r.pValue, "srm_detected": r.detected]
        case "cuped":
            let (theta, r) = ABStatistics.cuped(control: try decode(CovariateStatistics.self, entry, "control"),
                                                treatment: try decode(CovariateStatistics.self, entry, "treatment"), alpha: alpha)
            return ["theta": theta, "difference": r.estimate, "standard_error": r.standardError, "p_value": r.pValue, "ci": [r.lower, r.upper]]
        case "ratio":
            let control = try decode(RatioStatistics.self, entry, "control"), treatment = try decode(RatioStatistics.self, entry, "treatment")
            let r = ABStatistics.ratio(control: control, treatment: treatment, alpha: alpha)
            return ["control_ratio": control.ratio, "treatment_ratio": treatment.ratio, "difference": r.estimate,
                    "standard_error": r.standardError, "p_value": r.pValue, "ci": [r.lower, r.upper]]
        case "sequential":
            let tuning = (entry["tuning_n_star"] as? NSNumber)?.intValue ?? 5_000
            let r = ABStatistics.sequential(control: try decode(MeanStatistics.self, entry, "control"),
                                            treatment: try decode(MeanStatistics.self, entry, "treatment"), alpha: alpha, tuning: tuning)
            return ["difference": r.difference, "rho": r.rho, "halfwidth": r.halfWidth, "ci": [r.lower, r.upper], "p_value": r.pValue]
        case "noninferiority":
            let r = ABStatistics.nonInferiority(control: try decode(MeanStatistics.self, entry, "control"),
                                                treatment: try decode(MeanStatistics.self, entry, "treatment"),
                                                relativeMargin: try number(entry, "relative_margin"),
                                                higherIsBetter: entry["higher_is_better"] as? Bool ?? true, alpha: alpha)
            return ["difference": r.difference, "bound": r.bound, "p_value": r.pValue, "lower_confidence_bound": r.confidenceBound,
                    "non_inferior": r.nonInferior]
        default:
            throw DuetError.invalidValue(field: "section", reason: "unknown section \(section)")
        }
    }
}
