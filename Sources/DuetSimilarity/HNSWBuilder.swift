import DuetCore
import CDuetIntrinsics
import DuetKernels
import Foundation
import Synchronization

extension HNSWIndex {
    /// Builds an index over `count` rows of `dimension` floats. Nodes are inserted in row order with
    /// levels drawn from a seeded generator, so on one thread the same input and seed give the same
    /// bytes. With more threads, nodes are inserted concurrently under per-node locks (as hnswlib
    /// does): as good a graph, but not the same bytes from run to run.
    public static func build(_ vectors: UnsafeBufferPointer<Float>, dimension: Int, metric: SimilarityMetric,
                             parameters: HNSWParameters = HNSWParameters(), threads: Int = 1,
                             progress: (@Sendable (Int) -> Void)? = nil) throws -> HNSWIndex {
        try parameters.validate()
        guard threads >= 1 else { throw DuetError.invalidValue(field: "threads", reason: "\(threads) must be ≥ 1") }
        guard dimension >= 1, vectors.count % dimension == 0, vectors.count > 0 else {
            throw DuetError.invalidValue(field: "vectors", reason: "\(vectors.count) values do not form rows of \(dimension)")
        }
        let count = vectors.count / dimension
        guard count < Int(UInt32.max) else { throw DuetError.invalidValue(field: "vectors", reason: "too many rows") }
        let mips = metric == .innerProduct && parameters.mipsReduction
        let layout = Layout(count: count, storedDimension: dimension + (mips ? 1 : 0), dimension: dimension, m: parameters.m, metric: metric)

        // Levels first: they fix the upper-link table's size, so the file can be laid out at once.
        var rng = SplitMix64(seed: parameters.seed, 31)
        let levelScale = 1 / Foundation.log(Double(parameters.m))
        var levels = [UInt8](repeating: 0, count: count)
        for node in 0..<count {
            levels[node] = UInt8(min(31, Int(-Foundation.log(max(rng.uniform(), 1e-300)) * levelScale)))
        }
        var upperLinkCount = 0
        for level in levels { upperLinkCount += Int(level) * (1 + parameters.m) }
        let size = layout.fileSize(upperLinkCount: upperLinkCount)
        let storage = ByteStorage(size: size)
        let base = storage.pointer
        levels.withUnsafeBytes { (base + layout.levelsOffset).copyMemory(from: $0.baseAddress!, byteCount: count) }
        let starts = (base + layout.startsOffset).assumingMemoryBound(to: UInt64.self)
        var running: UInt64 = 0
        for node in 0..<count {
            starts[node] = running
            running += UInt64(Int(levels[node]) * (1 + parameters.m))
        }
        starts[count] = running

        // Vectors into their records: normalised for cosine, lifted for MIPS.
        let source = vectors.baseAddress!
        var maxNormSquared: Float = 0
        if mips { for row in 0..<count { maxNormSquared = max(maxNormSquared, VectorMath.normSquared(source + row * dimension, dimension)) } }
        for row in 0..<count {
            let target = (base + layout.recordsOffset + row * layout.recordBytes + 4 * (1 + layout.m0)).assumingMemoryBound(to: Float.self)
            let input = source + row * dimension
            let normSquared = VectorMath.normSquared(input, dimension)
            let scale: Float = metric == .cosine && normSquared > 0 ? 1 / normSquared.squareRoot() : 1
            for j in 0..<dimension { target[j] = input[j] * scale }
            if mips { target[dimension] = max(0, maxNormSquared - normSquared).squareRoot() }
        }

        let index = HNSWIndex(layout: layout, maxLevel: Int(levels[0]), entry: 0, bytes: UnsafeRawBufferPointer(start: base, count: size), owner: storage)
        if threads == 1 || count < 1_000 {
            var inserter = Inserter(index: index, efConstruction: parameters.efConstruction, locks: NoLinkLocks())
            for node in 1..<count {
                inserter.insert(node, entry: index.entry, maxLevel: index.maxLevel)
                if level(of: node, in: index) > index.maxLevel {
                    index.maxLevel = level(of: node, in: index)
                    index.entry = node
                }
                if node & 0xFFF == 0 { progress?(node) }
            }
        } else {
            buildConcurrently(index, efConstruction: parameters.efConstruction, threads: threads, progress: progress)
        }
        progress?(count)
        index.writeHeader(layout: layout, into: base)
        return index
    }

    private static func level(of node: Int, in index: HNSWIndex) -> Int { Int(index.levels[node]) }

    /// Workers take nodes in chunks from a shared counter. A node that will top the graph holds the
    /// entry lock for its whole insertion, so the entry point and top level change together.
    private static func buildConcurrently(_ index: HNSWIndex, efConstruction: Int, threads: Int, progress: (@Sendable (Int) -> Void)?) {
        let lockBytes = UnsafeMutablePointer<UInt8>.allocate(capacity: index.count + 1)
        lockBytes.initialize(repeating: 0, count: index.count + 1)
        defer { lockBytes.deallocate() }
        let locks = NodeLinkLocks(bytes: lockBytes)
        let entryLock = UnsafeMutableSendablePointer(lockBytes + index.count)
        let inserted = Atomic<Int>(1)
        let shared = UnsafeSendableIndex(index: index)
        Parallel.chunks(index.count - 1, threads: threads, chunk: 256) { range, _ in
            let index = shared.index
            var inserter = Inserter(index: index, efConstruction: efConstruction, locks: locks)
            for offset in range {
                let node = offset + 1
                let level = Int(index.levels[node])
                duet_spin_lock(entryLock.pointer)
                let entry = index.entry, maxLevel = index.maxLevel
                let raisesTop = level > maxLevel
                if !raisesTop { duet_spin_unlock(entryLock.pointer) }
                inserter.insert(node, entry: entry, maxLevel: maxLevel)
                if raisesTop {
                    index.maxLevel = level
                    index.entry = node
                    duet_spin_unlock(entryLock.pointer)
                }
            }
            index.returnScratch(inserter.scratch)
            let done = inserted.add(range.count, ordering: .relaxed).newValue
            if done & ~0xFFF != (done - range.count) & ~0xFFF { progress?(done) }
        }
    }

    func writeHeader(layout: Layout, into base: UnsafeMutableRawPointer) {
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) { (base + offset).storeBytes(of: value.littleEndian, as: T.self) }
        for (offset, byte) in Self.magic.enumerated() { put(byte, offset) }
        put(Self.formatVersion, 8)
        put(layout.metric.code, 12)
        put(UInt64(layout.count), 16)
        put(UInt64(layout.storedDimension), 24)
        put(UInt64(layout.dimension), 32)
        put(UInt64(layout.m), 40)
        put(UInt64(layout.m0), 48)
        put(UInt64(maxLevel), 56)
        put(UInt64(entry), 64)
        put(UInt64(layout.recordBytes), 72)
        put(UInt64(layout.levelsOffset), 80)
        put(UInt64(layout.recordsOffset), 88)
        put(UInt64(layout.startsOffset), 96)
        put(UInt64(layout.linksOffset), 104)
        put(UInt64(bytes.count), 112)
        put(FNV1a64.hash(UnsafeRawBufferPointer(start: base, count: 120)), 120)
    }
}

/// The index crosses into builder threads; each writes only under the node locks.
private struct UnsafeSendableIndex: @unchecked Sendable {
    let index: HNSWIndex
}

/// Insertion as in hnswlib: greedy descent to the node's top level, then on each level a beam
/// search of width efConstruction, neighbours chosen by the diversity heuristic, and back-links
/// added (pruned by the same heuristic when a list is full). Every link list read or written is
/// held under `locks`, which cost nothing on one thread.
struct Inserter<Locks: LinkLocks> {
    let index: HNSWIndex
    let efConstruction: Int
    let scratch: SearchScratch
    let locks: Locks
    var candidates: [(distance: Float, id: UInt32)] = []
    var selected: [(distance: Float, id: UInt32)] = []

    init(index: HNSWIndex, efConstruction: Int, locks: Locks) {
        self.index = index
        self.efConstruction = efConstruction
        self.locks = locks
        scratch = index.takeScratch()
    }

    @inline(__always) func distance(_ a: Int, _ b: Int) -> Float {
        -VectorMath.dot(index.vector(a), index.vector(b), index.storedDimension)
    }

    @inline(__always) func links(_ node: Int, _ level: Int) -> UnsafeMutablePointer<UInt32> {
        UnsafeMutablePointer(mutating: level == 0 ? index.layer0(node) : index.upper(node, level))
    }

    /// Links `node` into the graph whose entry point and top level were `entry` and `maxLevel`
    /// when it started; the caller moves the entry point if the node tops the graph.
    mutating func insert(_ node: Int, entry: Int, maxLevel: Int) {
        let level = Int(index.levels[node])
        let q = index.vector(node)
        var (current, currentDistance) = (entry, distance(node, entry))
        if maxLevel > level {
            (current, currentDistance) = index.descend(q, dimension: index.storedDimension, from: current, distance: currentDistance,
                                                       topLevel: maxLevel, downTo: level + 1, locks: locks)
        }
        for layer in stride(from: min(level, maxLevel), through: 0, by: -1) {
            index.searchLayer(q, dimension: index.storedDimension, entry: current, entryDistance: currentDistance, ef: efConstruction,
                              level: layer, excluded: ExclusionSet.none, scratch: scratch, locks: locks)
            candidates = scratch.top.drainSorted()
            selectNeighbours(limit: index.m)
            locks.lock(node)
            let own = links(node, layer)
            own[0] = UInt32(selected.count)
            for (slot, neighbour) in selected.enumerated() { own[1 + slot] = neighbour.id }
            locks.unlock(node)
            let chosen = selected
            for neighbour in chosen { connect(Int(neighbour.id), to: node, layer: layer) }
            if let closest = candidates.first {
                current = Int(closest.id)
                currentDistance = closest.distance
            }
        }
    }

    /// hnswlib's getNeighborsByHeuristic2: keep a candidate only if it is closer to the new node
    /// than to every neighbour already kept, so links spread in different directions.
    mutating func selectNeighbours(limit: Int) {
        selected.removeAll(keepingCapacity: true)
        if candidates.count <= limit {
            selected.append(contentsOf: candidates)
            return
        }
        for candidate in candidates {
            if selected.count >= limit { break }
            var keep = true
            for kept in selected where distance(Int(candidate.id), Int(kept.id)) < candidate.distance {
                keep = false
                break
            }
            if keep { selected.append(candidate) }
        }
    }

    mutating func connect(_ node: Int, to newNode: Int, layer: Int) {
        locks.lock(node)
        defer { locks.unlock(node) }
        let limit = layer == 0 ? index.m0 : index.m
        let list = links(node, layer)
        let count = Int(list[0])
        if count < limit {
            list[1 + count] = UInt32(newNode)
            list[0] = UInt32(count + 1)
            return
        }
        let saved = candidates
        candidates.removeAll(keepingCapacity: true)
        candidates.append((distance(node, newNode), UInt32(newNode)))
        for slot in 0..<count {
            let other = Int(list[1 + slot])
            candidates.append((distance(node, other), UInt32(other)))
        }
        candidates.sort { $0.distance != $1.distance ? $0.distance < $1.distance : $0.id < $1.id }
        selectNeighbours(limit: limit)
        list[0] = UInt32(selected.count)
        for (slot, neighbour) in selected.enumerated() { list[1 + slot] = neighbour.id }
        candidates = saved
    }
}

/// Zeroed, aligned bytes an index owns.
final class ByteStorage: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(size: Int) {
        pointer = .allocate(byteCount: max(size, 1), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(size, 1))
    }
    deinit { pointer.deallocate() }
}
