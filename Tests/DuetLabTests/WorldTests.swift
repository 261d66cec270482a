import DuetCore
import DuetLab
import DuetTestSupport
import Foundation
import Testing

@Suite struct WorldTests {
    static let spec = WorldSpec(seed: 7, users: 600, tracks: 2_000, events: 30_000)

    @Test func generationIsDeterministicWhateverTheThreads() async throws {
        try await withScratchFolder { folder in
            let world = try World(spec: Self.spec)
            let one = try WorldGenerator(world: world, threads: 1).generate(into: folder.appendingPathComponent("a"))
            let two = try WorldGenerator(world: world, threads: 2).generate(into: folder.appendingPathComponent("b"))
            #expect(one.eventsSHA256 == two.eventsSHA256)
            #expect(one.events == two.events)
            #expect(abs(Double(one.events) / Double(Self.spec.events) - 1) < 0.1, "event count near the target")
            #expect(one.plays > 0 && one.skips > 0 && one.saves > 0)
            let other = try WorldGenerator(world: try World(spec: WorldSpec(seed: 8, users: 600, tracks: 2_000, events: 30_000)))
                .generate(into: folder.appendingPathComponent("c"))
            #expect(other.eventsSHA256 != one.eventsSHA256)
            #expect(throws: DuetError.self) { try WorldGenerator(world: world).generate(into: folder.appendingPathComponent("a")) }
        }
    }

    @Test func truthPrefersTheListenersGenres() throws {
        let world = try World(spec: Self.spec)
        var inGenre: [Double] = [], outGenre: [Double] = []
        for user in 0..<100 {
            let genres = Set(world.tasteGenres(user: user).map(\.genre))
            let taste = world.tasteVector(user: user)
            for track in stride(from: 0, to: Self.spec.tracks, by: 37) {
                let affinity = world.affinity(taste: taste, track: track)
                #expect(affinity > 0 && affinity < 1)
                if genres.contains(world.genre(ofArtist: world.artist(ofTrack: track))) { inGenre.append(affinity) } else { outGenre.append(affinity) }
            }
        }
        let meanIn = inGenre.reduce(0, +) / Double(inGenre.count)
        let meanOut = outGenre.reduce(0, +) / Double(outGenre.count)
        #expect(meanIn > meanOut + 0.3, "in-genre \(meanIn) vs out-of-genre \(meanOut)")
    }

    @Test func worldImportsWithItsCatalogue() async throws {
        try await withScratchFolder { folder in
            let worldFolder = folder.appendingPathComponent("world")
            let world = try World(spec: Self.spec)
            _ = try WorldGenerator(world: world).generate(into: worldFolder)
            let store = SnapshotStore(home: DuetHome(root: folder))
            let report = try await ImportPipeline.run(Importer(source: .world(folder: worldFolder.path)), into: .snapshot(store))
            let info = try #require(report.snapshot)
            #expect(report.catalogItems == Self.spec.tracks)
            #expect(info.users > 0 && info.users <= Self.spec.users)
            let catalog = try store.catalog(info.hash)
            #expect(catalog["t0"]?.tags == [world.genreName(0)])
        }
    }

    @Test func invalidSpecIsRefused() {
        #expect { try World(spec: WorldSpec(users: 0)) } throws: { "\($0)".contains("users") }
        #expect { try World(spec: WorldSpec(tracks: 10, artists: 50)) } throws: { "\($0)".contains("artists") }
    }
}
