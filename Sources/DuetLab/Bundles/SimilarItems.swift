public import DuetCore
public import DuetSimilarity

/// Similar items from a bundle, for the Lab's look at a model: the same `BundleSimilarity` Serve answers with.
public enum SimilarItems {
    public static func search(bundle: ModelBundle, item: Int, n: Int, index requested: String?,
                              predicates: [ItemPredicate] = []) throws -> (index: String, items: [Neighbour]) {
        let similarity = try BundleSimilarity(bundle: bundle)
        guard let answer = similarity.similar(to: item, n: n, index: requested, predicates: predicates) else {
            throw DuetError.notFound(kind: "index", id: "\(requested ?? "default") (bundle has: \(similarity.names.joined(separator: ", ")))")
        }
        return (answer.name, answer.items)
    }
}
