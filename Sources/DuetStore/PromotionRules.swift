public import DuetCore

/// The evidence rules of a promotion, as a pure function of what the registry holds, so every
/// backend applies exactly the same rules inside its own transaction.
public enum PromotionRules {
    public struct ShipDecision: Sendable {
        public var id: Int64
        public var arm: String?
        public var spec: ExperimentSpec

        public init(id: Int64, arm: String?, spec: ExperimentSpec) {
            self.id = id
            self.arm = arm
            self.spec = spec
        }
    }

    /// - Parameters:
    ///   - evaluationAgainstCurrent: the newest evaluation of `model` against `current` (or, with
    ///     nothing in production, the newest evaluation of `model` at all).
    ///   - ships: ship decisions, newest first.
    /// - Returns: the evaluation and decision the promotion rests on.
    public static func evidence(model: String, current: String?, evaluationAgainstCurrent: Int64?,
                                ships: [ShipDecision]) throws -> (evaluation: Int64?, decision: Int64?) {
        guard let current else {
            guard let evaluationAgainstCurrent else {
                throw DuetError.refused("refused: model \(model.prefix(12)) has no offline evaluation. Run `duet lab evaluate --candidate \(model.prefix(12)) --baseline popularity` first, or pass --override --reason \"…\"")
            }
            return (evaluationAgainstCurrent, nil)
        }
        guard let evaluationAgainstCurrent else {
            throw DuetError.refused("refused: model \(model.prefix(12)) has no offline evaluation against the current production model \(current.prefix(12)). Run `duet lab evaluate --candidate \(model.prefix(12)) --baseline production` first, or pass --override --reason \"…\"")
        }
        for ship in ships where ship.spec.arms.contains(where: { $0.name == ship.arm && $0.bundleID == model }) {
            return (evaluationAgainstCurrent, ship.id)
        }
        throw DuetError.refused("refused: no recorded decision ships model \(model.prefix(12)). Record one with `duet lab decide EXP --outcome ship …` after an A/B test, or pass --override --reason \"…\"")
    }
}
