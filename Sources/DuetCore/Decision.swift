public enum DecisionOutcome: String, Hashable, Sendable, Codable, CaseIterable {
    case ship
    case noShip = "no-ship"
    case inconclusive
    case abandon
}

/// A reviewed verdict on an experiment, tied to the exact analysis it rests on.
public struct Decision: Hashable, Sendable, Codable {
    public var experimentID: String
    public var outcome: DecisionOutcome
    /// The arm shipped, when the outcome is ship.
    public var arm: String?
    public var reviewer: String
    public var reason: String
    /// SHA-256 of the analysis JSON the reviewer saw.
    public var analysisHash: String
    /// Set when the reviewer decided against the analysis' recommendation.
    public var overrideReason: String?
    /// The production generation the decision led to, once promoted.
    public var registryGeneration: Int?
    public var decidedAt: EpochMillis
    /// Who approved the analysis the decision rests on (filled in by the registry when it records the decision).
    public var approvers: [String]
    /// Objections overruled rather than resolved.
    public var dissent: [Dissent]

    public init(experimentID: String, outcome: DecisionOutcome, arm: String? = nil, reviewer: String, reason: String,
                analysisHash: String, overrideReason: String? = nil, registryGeneration: Int? = nil, decidedAt: EpochMillis,
                approvers: [String] = [], dissent: [Dissent] = []) {
        self.experimentID = experimentID
        self.outcome = outcome
        self.arm = arm
        self.reviewer = reviewer
        self.reason = reason
        self.analysisHash = analysisHash
        self.overrideReason = overrideReason
        self.registryGeneration = registryGeneration
        self.decidedAt = decidedAt
        self.approvers = approvers
        self.dissent = dissent
    }

    enum CodingKeys: String, CodingKey {
        case experimentID = "experimentId", outcome, arm, reviewer, reason, analysisHash, overrideReason, registryGeneration, decidedAt,
             approvers, dissent
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(experimentID: try c.decode(String.self, forKey: .experimentID), outcome: try c.decode(DecisionOutcome.self, forKey: .outcome),
                  arm: try c.decodeIfPresent(String.self, forKey: .arm), reviewer: try c.decode(String.self, forKey: .reviewer),
                  reason: try c.decode(String.self, forKey: .reason), analysisHash: try c.decode(String.self, forKey: .analysisHash),
                  overrideReason: try c.decodeIfPresent(String.self, forKey: .overrideReason),
                  registryGeneration: try c.decodeIfPresent(Int.self, forKey: .registryGeneration), decidedAt: try c.decode(EpochMillis.self, forKey: .decidedAt),
                  approvers: try c.decodeIfPresent([String].self, forKey: .approvers) ?? [],
                  dissent: try c.decodeIfPresent([Dissent].self, forKey: .dissent) ?? [])
    }

    public func validate() throws(DuetError) {
        try Identifier.validate(experimentID, field: "experiment id")
        if reviewer.trimmingCharacters(in: .whitespaces).isEmpty {
            throw .invalidValue(field: "reviewer", reason: "a decision needs a named reviewer")
        }
        if reason.trimmingCharacters(in: .whitespaces).isEmpty {
            throw .invalidValue(field: "reason", reason: "a decision needs a reason")
        }
        guard analysisHash.count == 64, analysisHash.allSatisfy(\.isHexDigit) else {
            throw .invalidValue(field: "analysis hash", reason: "must be the SHA-256 (64 hex digits) of the analysis")
        }
        if outcome == .ship, arm == nil {
            throw .invalidValue(field: "arm", reason: "a ship decision names the arm it ships")
        }
    }
}

import Foundation
