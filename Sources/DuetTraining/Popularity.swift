import DuetCore

public enum Popularity {
    /// Ranks items by how many users interacted with them: the baseline every model must beat,
    /// and the fallback list of every bundle.
    public static func train(_ matrix: InteractionMatrix) -> FactorModel {
        FactorModel(kind: "popularity", dimension: 0, userCount: matrix.rows, itemCount: matrix.columns, userFactors: [],
                    itemFactors: [], itemPopularity: FactorModel.popularity(of: matrix), hyperparameters: [:])
    }
}
