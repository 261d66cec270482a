import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetSimilarity
import DuetStore
import DuetTraining
import Foundation

struct SimilarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "similar",
        abstract: "Items most similar to an item in a bundle, with names from its catalogue: a quick look at what a model learned."
    )
    @OptionGroup var home: HomeOptions
    @Option(help: "Bundle id, prefix or 'production' (or a bundle folder path).") var factors: String = "production"
    @Option(help: "Item id.") var item: String
    @Option(name: .short, help: "How many.") var n: Int = 10
    @Option(help: "The bundle's index to use (default: its cosine index, else exact).") var index: String?
    @Option(help: "Answer from a published similarity index (its name) or an artefact (id or prefix) instead of a bundle.") var published: String?
    @Option(help: "Only items matching key=value (or not, key!=value), e.g. genre=jazz; repeatable.") var filter: [String] = []

    func run() async throws {
        guard n > 0, n <= 1_000 else { throw ValidationError("-n must be 1…1000") }
        let predicates = try ItemPredicate.parse(all: filter)
        if let published {
            let artefact = try await home.lab().openIndex(published)
            guard let neighbours = artefact.similar(to: item, n: n, predicates: predicates) else {
                throw DuetError.notFound(kind: "item in index \(artefact.name) (\(artefact.id.prefix(12)))", id: item)
            }
            print("similar to \(artefact.catalog[item]?.displayName ?? item) (\(artefact.name), artefact \(artefact.id.prefix(12))):")
            printNeighbours(neighbours, ids: artefact.itemIDs, catalog: artefact.catalog)
            return
        }
        let folder: URL
        if FileManager.default.fileExists(atPath: (factors as NSString).appendingPathComponent(BundleFiles.manifest)) {
            folder = URL(fileURLWithPath: factors)
        } else {
            let lab = try await home.lab()
            folder = try lab.bundleFolder(try await lab.resolveBundle(factors))
        }
        let bundle = try ModelBundle(folder: folder)
        guard let row = bundle.itemIndex(of: item) else { throw DuetError.notFound(kind: "item in bundle \(bundle.id.prefix(12))", id: item) }
        guard bundle.dimension > 0 else { throw DuetError.refused("bundle \(bundle.id.prefix(12)) has no factors (\(bundle.manifest.modelKind))") }
        let neighbours = try SimilarItems.search(bundle: bundle, item: row, n: n, index: index, predicates: predicates)
        print("similar to \(bundle.catalog[item]?.displayName ?? item) (\(neighbours.index)):")
        printNeighbours(neighbours.items, ids: bundle.itemIDs, catalog: bundle.catalog)
    }

    func printNeighbours(_ neighbours: [Neighbour], ids: [String], catalog: [String: CatalogItem]) {
        for (rank, neighbour) in neighbours.enumerated() {
            let id = ids[neighbour.id]
            print(String(format: "%3d. %@  (%.3f)", rank + 1, catalog[id]?.displayName ?? id, neighbour.score))
        }
    }
}
