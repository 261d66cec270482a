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
    @Option(help: "Index name (default: the bundle's cosine index, else exact).") var index: String?
    @Option(help: "Skip items with fewer training users than this.") var minUsers: Int = 5

    func run() async throws {
        guard n > 0, n <= 1_000 else { throw ValidationError("-n must be 1…1000") }
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
        let neighbours = try SimilarItems.search(bundle: bundle, item: row, n: n, index: index, minimumUsers: minUsers)
        print("similar to \(bundle.catalog[item]?.displayName ?? item) (\(neighbours.index)):")
        for (rank, neighbour) in neighbours.items.enumerated() {
            let id = bundle.itemIDs[neighbour.id]
            print(String(format: "%3d. %@  (%.3f)", rank + 1, bundle.catalog[id]?.displayName ?? id, neighbour.score))
        }
    }
}
