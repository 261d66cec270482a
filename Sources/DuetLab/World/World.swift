public import DuetCore
import Foundation

/// A seeded music world that knows the truth: every listener's affinity for every track.
///
/// Genres have centres in a latent space; artists sit near their genre's centre and tracks near
/// their artist. Listeners like one to three genres and have a personal taste vector. Popularity
/// is Zipf-like: within a genre by artist rank, within an artist by track rank. A listener meets
/// tracks through their genres and by popularity, then plays or skips each with probability
/// `affinity(user, track)`, which the traffic simulator reuses to answer recommendations.
public final class World: Sendable {
    public let spec: WorldSpec
    /// Track vectors, row-major `tracks × dimension`, unit length.
    private let trackVectors: [Float]
    private let genreCentres: [Float]
    /// Cumulative Zipf weights over artist rank within a genre and over genres.
    private let artistRankCDF: [Double]
    private let genreCDF: [Double]
    private let artistsPerGenre: Int
    private let tracksPerArtist: Int

    static let genreNames = ["indie rock", "techno", "jazz", "hip hop", "classical", "folk", "metal", "pop",
                             "ambient", "reggae", "blues", "soul", "punk", "house", "country", "latin"]

    public init(spec: WorldSpec) throws(DuetError) {
        try spec.validate()
        self.spec = spec
        let d = spec.dimension
        artistsPerGenre = spec.artists / spec.genres
        tracksPerArtist = max(1, spec.tracks / spec.artists)

        var centres = [Float](repeating: 0, count: spec.genres * d)
        for genre in 0..<spec.genres {
            var rng = SplitMix64(seed: spec.seed, 1, UInt64(genre))
            Self.fillUnit(&centres, row: genre, dimension: d, rng: &rng, base: nil, spread: 1)
        }
        genreCentres = centres

        var artistVectors = [Float](repeating: 0, count: spec.artists * d)
        for artist in 0..<spec.artists {
            var rng = SplitMix64(seed: spec.seed, 2, UInt64(artist))
            let genre = artist % spec.genres
            Self.fillUnit(&artistVectors, row: artist, dimension: d, rng: &rng,
                          base: Array(centres[(genre * d)..<((genre + 1) * d)]), spread: 0.15)
        }
        var tracks = [Float](repeating: 0, count: spec.tracks * d)
        for track in 0..<spec.tracks {
            var rng = SplitMix64(seed: spec.seed, 3, UInt64(track))
            let artist = min(track / max(1, spec.tracks / spec.artists), spec.artists - 1)
            Self.fillUnit(&tracks, row: track, dimension: d, rng: &rng,
                          base: Array(artistVectors[(artist * d)..<((artist + 1) * d)]), spread: 0.1)
        }
        trackVectors = tracks
        artistRankCDF = Self.cdf(count: max(1, spec.artists / spec.genres), exponent: spec.zipf)
        genreCDF = Self.cdf(count: spec.genres, exponent: 0.6)
    }

    private static func fillUnit(_ out: inout [Float], row: Int, dimension d: Int, rng: inout SplitMix64,
                                 base: [Float]?, spread: Double) {
        var norm: Float = 0
        for j in 0..<d {
            let value = (base?[j] ?? 0) + Float(spread * rng.gaussian())
            out[row * d + j] = value
            norm += value * value
        }
        let scale = 1 / max(norm.squareRoot(), 1e-6)
        for j in 0..<d { out[row * d + j] *= scale }
    }

    private static func cdf(count: Int, exponent: Double) -> [Double] {
        var total = 0.0
        var result = [Double](repeating: 0, count: count)
        for rank in 0..<count {
            total += 1 / Foundation.pow(Double(rank + 1), exponent)
            result[rank] = total
        }
        return result.map { $0 / total }
    }

    private static func pick(_ cdf: [Double], _ u: Double) -> Int {
        var low = 0, high = cdf.count - 1
        while low < high {
            let mid = (low + high) / 2
            if cdf[mid] < u { low = mid + 1 } else { high = mid }
        }
        return low
    }

    // MARK: - Entities

    public func userID(_ user: Int) -> String { "u\(user)" }
    public func trackID(_ track: Int) -> String { "t\(track)" }

    /// The index behind "t123", or nil for an id this world did not make.
    public func trackIndex(of id: String) -> Int? {
        guard id.first == "t", let index = Int(id.dropFirst()), index >= 0, index < spec.tracks else { return nil }
        return index
    }

    public func userIndex(of id: String) -> Int? {
        guard id.first == "u", let index = Int(id.dropFirst()), index >= 0, index < spec.users else { return nil }
        return index
    }

    public func artist(ofTrack track: Int) -> Int { min(track / tracksPerArtist, spec.artists - 1) }
    public func genre(ofArtist artist: Int) -> Int { artist % spec.genres }

    public func genreName(_ genre: Int) -> String {
        genre < Self.genreNames.count ? Self.genreNames[genre] : "genre \(genre + 1)"
    }

    public func isAvailable(track: Int) -> Bool {
        var rng = SplitMix64(seed: spec.seed, 4, UInt64(track))
        return rng.uniform() >= spec.unavailableShare
    }

    /// The listener's favourite genres with their weights (one to three, summing to 1).
    public func tasteGenres(user: Int) -> [(genre: Int, weight: Double)] {
        var rng = SplitMix64(seed: spec.seed, 5, UInt64(user))
        let count = 1 + rng.below(min(3, spec.genres))
        var chosen: [(Int, Double)] = []
        while chosen.count < count {
            let genre = Self.pick(genreCDF, rng.uniform())
            if !chosen.contains(where: { $0.0 == genre }) { chosen.append((genre, 0.3 + rng.uniform())) }
        }
        let total = chosen.reduce(0) { $0 + $1.1 }
        return chosen.map { ($0.0, $0.1 / total) }
    }

    /// Unit taste vector: the favourite genres' centres plus a personal offset.
    public func tasteVector(user: Int) -> [Float] {
        let d = spec.dimension
        var vector = [Float](repeating: 0, count: d)
        for (genre, weight) in tasteGenres(user: user) {
            for j in 0..<d { vector[j] += Float(weight) * genreCentres[genre * d + j] }
        }
        var rng = SplitMix64(seed: spec.seed, 6, UInt64(user))
        var norm: Float = 0
        for j in 0..<d {
            vector[j] += Float(0.12 * rng.gaussian())
            norm += vector[j] * vector[j]
        }
        let scale = 1 / max(norm.squareRoot(), 1e-6)
        return vector.map { $0 * scale }
    }

    /// Ground truth: the probability that `user` plays `track` through rather than skipping it.
    public func affinity(taste: [Float], track: Int) -> Double {
        let d = spec.dimension
        var dot: Float = 0
        trackVectors.withUnsafeBufferPointer { vectors in
            for j in 0..<d { dot += taste[j] * vectors[track * d + j] }
        }
        // Logistic in cosine similarity: close tracks (cosine 0.8) are played ~90% of the time, unrelated ones ~2%.
        return 1 / (1 + Foundation.exp(-(8 * Double(dot) - 4)))
    }

    public func affinity(user: Int, track: Int) -> Double { affinity(taste: tasteVector(user: user), track: track) }

    /// A track the listener comes across on their own: a favourite genre (or, 15% of the time,
    /// any genre by popularity), then an artist and a track by Zipf rank.
    func encounter(taste genres: [(genre: Int, weight: Double)], rng: inout SplitMix64) -> Int {
        var genre: Int
        if rng.uniform() < 0.15 {
            genre = Self.pick(genreCDF, rng.uniform())
        } else {
            var u = rng.uniform()
            genre = genres[genres.count - 1].genre
            for entry in genres {
                if u < entry.weight { genre = entry.genre; break }
                u -= entry.weight
            }
        }
        let rank = Self.pick(artistRankCDF, rng.uniform())
        let artist = min(genre + rank * spec.genres, spec.artists - 1)
        let first = artist * tracksPerArtist
        let count = artist == spec.artists - 1 ? spec.tracks - first : tracksPerArtist
        // Within an artist, the first tracks are the hits.
        let trackRank = Int(Double(count) * Foundation.pow(rng.uniform(), 2.5))
        return min(first + trackRank, spec.tracks - 1)
    }

    // MARK: - Names

    private static let syllables = ["ka", "lo", "mi", "ra", "ven", "tor", "sel", "na", "dri", "po", "lu", "zen", "mar",
                                    "qui", "bel", "sha", "ro", "vi", "dan", "el", "fo", "gra", "hel", "jun", "ne", "os"]
    private static let words = ["Midnight", "Echo", "River", "Neon", "Paper", "Golden", "Static", "Velvet", "Hollow",
                                "Summer", "Glass", "Wild", "Silent", "Electric", "Northern", "Broken", "Blue", "Fire",
                                "Dream", "Signal", "Ocean", "Ghost", "Satellite", "Honey", "Winter", "Light", "Shadow",
                                "Heart", "Machine", "Garden", "Desert", "Mirror"]

    public func artistName(_ artist: Int) -> String {
        var rng = SplitMix64(seed: spec.seed, 7, UInt64(artist))
        let parts = 2 + rng.below(2)
        var name = ""
        for _ in 0..<parts { name += Self.syllables[rng.below(Self.syllables.count)] }
        name = name.prefix(1).uppercased() + name.dropFirst()
        switch rng.below(4) {
        case 0: return "The \(name)s"
        case 1: return "\(name) \(Self.words[rng.below(Self.words.count)])"
        default: return "\(name) (\(artist))"
        }
    }

    public func trackTitle(_ track: Int) -> String {
        var rng = SplitMix64(seed: spec.seed, 8, UInt64(track))
        return "\(Self.words[rng.below(Self.words.count)]) \(Self.words[rng.below(Self.words.count)]) \(track)"
    }

    public func catalogItem(_ track: Int) -> CatalogItem {
        let artist = artist(ofTrack: track)
        return CatalogItem(id: trackID(track), title: trackTitle(track), artist: artistName(artist),
                           tags: [genreName(genre(ofArtist: artist))], available: isAvailable(track: track),
                           attributes: ["explicit": artist % 5 == 0 ? "true" : "false"])
    }
}
