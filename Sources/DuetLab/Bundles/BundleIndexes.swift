import DuetCore
public import DuetTraining
public import DuetSimilarity

/// The similarity indexes a bundle carries, named so Serve can say which answered. A factor model's:
/// `items/<kind>-<d>` (cosine, for similar items) and `items/<kind>-<d>-ip` (a graph on the inner
/// product itself, for the user recommendations Serve's exact scan cannot prove cheaply).
/// Item-kNN's: `items/item-knn`, its neighbour lists.
public enum BundleIndexes {
    public static func attachments(for model: FactorModel, parameters: HNSWParameters = HNSWParameters(m: 16, efConstruction: 100),
                                   threads: Int = 1) throws -> [BundleAttachment] {
        if let lists = model.itemNeighbours {
            // Item-kNN's lists are the model itself: they rank users' items and answer similar items.
            let descriptor = IndexDescriptor(name: "items/\(model.kind)", version: 1, kind: IndexKind.neighbours.rawValue,
                                             metric: SimilarityMetric.cosine.rawValue, file: IndexFiles.neighbours)
            return [BundleAttachment(name: IndexFiles.neighbours, index: descriptor) { writer in
                try NeighbourLists.write(starts: lists.neighbourStart, neighbours: lists.neighbours, similarities: lists.similarities, to: writer)
            }]
        }
        guard model.dimension > 0, model.itemCount > 1 else { return [] }
        var attachments: [BundleAttachment] = []
        for metric in [SimilarityMetric.cosine, .innerProduct] {
            let suffix = metric == .cosine ? "" : "-ip"
            let name = "items/\(model.kind)-\(model.dimension)\(suffix)"
            let file = "index-items-\(model.kind)-\(model.dimension)\(suffix).hnsw"
            let index = try model.itemFactors.withUnsafeBufferPointer {
                try HNSWIndex.build($0, dimension: model.dimension, metric: metric, parameters: parameters, threads: threads)
            }
            let descriptor = IndexDescriptor(name: name, version: Int(HNSWIndex.formatVersion), kind: "hnsw", metric: metric.rawValue, file: file)
            attachments.append(BundleAttachment(name: file, index: descriptor) { writer in try writer.write(index.bytes) })
        }
        return attachments
    }
}
