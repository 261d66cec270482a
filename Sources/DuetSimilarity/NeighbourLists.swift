public import DuetCore
public import Foundation

/// Item-kNN's answer, stored: for each item its most similar items, best first, with their
/// similarities. The file is u64 row starts (items + 1), then u32 neighbours, then f32 similarities,
/// read in place from the verified map.
public final class NeighbourLists: ItemSimilarity, @unchecked Sendable {
    public let itemCount: Int
    let starts: UnsafeBufferPointer<UInt64>
    let ids: UnsafeBufferPointer<UInt32>
    let similarities: UnsafeBufferPointer<Float>
    private let owner: AnyObject

    public static func bytes(itemCount: Int, entries: Int) -> Int { (itemCount + 1) * 8 + entries * 8 }

    /// Opens and checks a lists file: sizes, ascending starts, every neighbour in range.
    public init(mapped file: MappedFile, itemCount: Int) throws(DuetError) {
        func corrupt(_ reason: String) -> DuetError { .corruptFile(path: file.path, reason: reason) }
        guard itemCount >= 1, file.size >= (itemCount + 1) * 8 else { throw corrupt("too short for \(itemCount) items") }
        let starts = file.buffer(of: UInt64.self, at: 0, count: itemCount + 1)
        let entries = Int(truncatingIfNeeded: starts[itemCount])
        guard starts[0] == 0, entries >= 0, file.size == Self.bytes(itemCount: itemCount, entries: entries) else {
            throw corrupt("size does not match its row starts")
        }
        for item in 0..<itemCount where starts[item] > starts[item + 1] { throw corrupt("row starts decrease at item \(item)") }
        let ids = file.buffer(of: UInt32.self, at: (itemCount + 1) * 8, count: entries)
        if let bad = ids.first(where: { Int($0) >= itemCount }) { throw corrupt("neighbour \(bad) is out of range") }
        self.itemCount = itemCount
        self.starts = starts
        self.ids = ids
        similarities = file.buffer(of: Float.self, at: (itemCount + 1) * 8 + entries * 4, count: entries)
        owner = file
    }

    /// Writes lists given as CSR arrays.
    public static func write(starts: [Int], neighbours: [UInt32], similarities: [Float], to writer: AtomicFileWriter) throws {
        try writer.write(array: starts.map { UInt64($0) })
        try writer.write(array: neighbours)
        try writer.write(array: similarities)
    }

    public func neighbours(of item: Int, k: Int, filter: ItemFilter) -> [Neighbour] {
        guard (0..<itemCount).contains(item), k > 0 else { return [] }
        var result: [Neighbour] = []
        for slot in Int(starts[item])..<Int(starts[item + 1]) {
            let neighbour = Int(ids[slot])
            if neighbour == item || filter.rejects(neighbour) { continue }
            result.append(Neighbour(id: neighbour, score: similarities[slot]))
            if result.count == k { break }
        }
        return result
    }

    /// From either item's list (kNN similarity is symmetric before the top-k cut); 0 when neither keeps the other.
    public func similarity(_ a: Int, _ b: Int) -> Float {
        guard (0..<itemCount).contains(a), (0..<itemCount).contains(b) else { return 0 }
        for (from, to) in [(a, b), (b, a)] {
            for slot in Int(starts[from])..<Int(starts[from + 1]) where Int(ids[slot]) == to { return similarities[slot] }
        }
        return 0
    }

    /// How many neighbours are stored in all.
    public var entryCount: Int { ids.count }
}
