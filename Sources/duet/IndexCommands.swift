import ArgumentParser
import DuetCommandLine
import DuetCore
import DuetLab
import DuetSimilarity
import DuetStore
import DuetTraining
import Foundation

struct IndexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Similarity indexes as their own artefacts: build, publish, roll back, each name on its own generation.",
        discussion: """
            An index is an immutable, checksummed artefact built from a bundle's item vectors (HNSW, or partitioned \
            with --type partitioned) or from item-kNN \
            on a snapshot. Publishing points a name (e.g. tracks/als-64) at it; Serve answers \
            /v1/similar/{name}/items/{item} from it and swaps it on its own, never touching the production recommender.
            """,
        subcommands: [Build.self, Publish.self, Rollback.self, History.self, List.self]
    )

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Build and register an index (it serves nothing until published).")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Name to publish it under, e.g. tracks/als-64.") var name: String
        @Option(help: "Build an HNSW graph over this bundle's item vectors (id, prefix or 'production').") var bundle: String?
        @Option(help: "Build item-kNN neighbour lists from this snapshot (hash, prefix or 'latest').") var knnSnapshot: String?
        @Option(help: "Build an HNSW graph over these embeddings (raw little-endian float32 rows); needs --ids and --dim.") var vectors: String?
        @Option(help: "With --vectors: the item ids, one per line, in row order.") var ids: String?
        @Option(help: "With --vectors: floats per row.") var dim: Int?
        @Option(help: "For --bundle or --vectors: hnsw (a graph) or partitioned (k-means cells over 4-bit codes, re-ranked exactly).")
        var type: VectorIndexType = .hnsw
        @Option(help: "HNSW links per node.") var m: Int = 16
        @Option(help: "HNSW build beam.") var efConstruction: Int = 200
        @Option(help: "Cells of a partitioned index (default √items).") var partitions: Int?

        enum VectorIndexType: String, ExpressibleByArgument, CaseIterable { case hnsw, partitioned }

        var layout: VectorIndexLayout {
            switch type {
            case .hnsw: .hnsw(HNSWParameters(m: m, efConstruction: efConstruction))
            case .partitioned: .partitioned(PartitionParameters(partitions: partitions))
            }
        }
        @OptionGroup var knn: ItemKNNOptions
        @Option(help: "Threads.") var threads: Int = 2
        @Flag(help: "Publish it under NAME once built.") var publish = false
        @Option(help: "Why (recorded when publishing).") var reason: String?

        func run() async throws {
            let source: IndexBuildSource
            switch (bundle, knnSnapshot, vectors) {
            case let (bundle?, nil, nil): source = .bundle(bundle, layout)
            case let (nil, snapshot?, nil):
                source = .itemKNN(snapshot: snapshot, try knn.configuration(threads: threads))
            case let (nil, nil, vectors?):
                guard let ids, let dim else { throw ValidationError("--vectors needs --ids and --dim") }
                source = .vectors(path: vectors, ids: ids, dimension: dim, layout)
            default: throw ValidationError("give exactly one of --bundle, --knn-snapshot or --vectors")
            }
            guard (1...64).contains(threads) else { throw ValidationError("--threads must be 1…64") }
            if publish, reason?.isEmpty ?? true { throw ValidationError("--publish needs --reason") }
            let lab = try await home.lab()
            let actor = try person.resolved()
            let build = try await lab.buildIndex(name: name, from: source, threads: threads, actor: actor)
            let change = publish ? try await lab.publishIndex(name, artefact: build.id, actor: actor, reason: reason!) : nil
            if output.json { return try printJSON(BuildReport(id: build.id, seconds: build.seconds, manifest: build.manifest, published: change)) }
            var line = "index \(build.id.prefix(12)) built for '\(name)' in \(String(format: "%.1f", build.seconds)) s: \(build.manifest.kind.rawValue), \(build.manifest.itemCount) items"
            if let quality = build.manifest.quality { line += String(format: ", recall@10 %.3f vs exact (%d queries, ef %d)", quality.recallAt10, quality.queries, quality.ef) }
            print(line)
            if let change { print("'\(name)' generation \(change.generation): \(change.to.prefix(12))") }
        }

        struct BuildReport: Encodable {
            var id: String
            var seconds: Double
            var manifest: IndexManifest
            var published: IndexChange?
        }
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Point a name at a built artefact; Serve swaps it in on its own.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Index name.") var name: String
        @Argument(help: "Artefact id or prefix.") var artefact: String
        @Option(help: "Why.") var reason: String
        @Option(help: "Refuse if the name has moved from this generation.") var expectGeneration: Int?

        func run() async throws {
            let change = try await home.lab().publishIndex(name, artefact: artefact, actor: try person.resolved(), reason: reason,
                                                           expectedGeneration: expectGeneration)
            print("'\(name)' generation \(change.generation): \(change.from.map { "\($0.prefix(12)) → " } ?? "")\(change.to.prefix(12))")
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a name back one step, or to an artefact that served under it before.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var person: ActorOptions
        @Argument(help: "Index name.") var name: String
        @Option(help: "Artefact id or prefix (default: the one before the current).") var to: String?
        @Option(help: "Why.") var reason: String

        func run() async throws {
            let change = try await home.lab().rollbackIndex(name, to: to, actor: try person.resolved(), reason: reason)
            print("'\(name)' generation \(change.generation): rolled back \(change.from?.prefix(12) ?? "—") → \(change.to.prefix(12))")
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every publish and rollback of one name, or of all.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Index name (default: all).") var name: String?

        func run() async throws {
            let history = try await home.lab().registry.indexHistory(name)
            if output.json { return try printJSON(history) }
            if history.isEmpty { print("no index has been published\(name.map { " as '\($0)'" } ?? "")") }
            for change in history {
                print("\(change.name) gen \(change.generation)  \(TimestampParser.iso8601String(change.changedAt))  \(change.action.rawValue)  \(change.from?.prefix(12) ?? "—") → \(change.to.prefix(12))  by \(change.actor): \(change.reason)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered artefacts, and which serve under their name.")
        @OptionGroup var home: HomeOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let lab = try await home.lab()
            let artefacts = try await lab.registry.indexArtefacts()
            if output.json { return try printJSON(artefacts) }
            let current = Dictionary(try await lab.registry.indexHistory(nil).map { ($0.name, $0) }, uniquingKeysWith: { $1 })
            if artefacts.isEmpty { print("no index artefacts; build one with `duet lab index build NAME --bundle production`") }
            for record in artefacts {
                let manifest = record.manifest
                let serving = current[record.name]?.to == record.id ? "  ← published, gen \(current[record.name]!.generation)" : ""
                let recall = manifest.quality.map { String(format: "  recall@10 %.3f", $0.recallAt10) } ?? ""
                print("\(record.id.prefix(12))  \(record.name)  \(manifest.kind.rawValue)/\(manifest.source.algorithm)  \(manifest.itemCount) items\(recall)\(serving)")
            }
        }
    }
}
