import DuetCore
import DuetKernels
import Foundation

/// Lloyd's k-means in the two sizes the partitioned index needs: cells over whole vectors (scored 16
/// centroids per kernel call) and 16 centres over two-value slices of the residuals.
enum KMeans {
    /// Rows in value-major blocks of 16 (`block[j·16 + lane]` is row lane's value j), zero-padded.
    static func valueMajorBlocks(_ rows: UnsafeBufferPointer<Float>, dimension d: Int) -> [Float] {
        let count = rows.count / d, blocks = (count + 15) / 16
        var out = [Float](repeating: 0, count: blocks * 16 * d)
        for row in 0..<count {
            for j in 0..<d { out[(row / 16) * 16 * d + j * 16 + row % 16] = rows[row * d + j] }
        }
        return out
    }

    /// The nearest centroid (Euclidean) of each point, as argmax of x·c − |c|²/2.
    static func assign(_ points: UnsafePointer<Float>, count: Int, dimension d: Int, centroids: [Float], threads: Int) -> [Int32] {
        let clusters = centroids.count / d
        let blocked = centroids.withUnsafeBufferPointer { valueMajorBlocks($0, dimension: d) }
        var halfNorms = [Float](repeating: .infinity, count: (clusters + 15) / 16 * 16)
        centroids.withUnsafeBufferPointer { c in
            for cluster in 0..<clusters { halfNorms[cluster] = VectorMath.normSquared(c.baseAddress! + cluster * d, d) / 2 }
        }
        var labels = [Int32](repeating: 0, count: count)
        let points = UnsafeSendablePointer(points)
        labels.withUnsafeMutableBufferPointer { out in
            let out = UnsafeMutableSendablePointer(out.baseAddress!)
            blocked.withUnsafeBufferPointer { blocked in
                halfNorms.withUnsafeBufferPointer { halfNorms in
                    let blocked = UnsafeSendablePointer(blocked.baseAddress!), halfNorms = UnsafeSendablePointer(halfNorms.baseAddress!)
                    Parallel.chunks(count, threads: threads, chunk: 1_024) { range, _ in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { scores in
                            for point in range {
                                var best: Float = -.infinity, label = 0
                                for block in 0..<(clusters + 15) / 16 {
                                    VectorMath.blockScores16(blocked.pointer + block * 16 * d, query: points.pointer + point * d, dimension: d,
                                                             into: scores.baseAddress!)
                                    // A block rarely beats the best so far: test its maximum before finding the lane.
                                    let lanes = UnsafeRawPointer(scores.baseAddress!).loadUnaligned(as: SIMD16<Float>.self)
                                        - UnsafeRawPointer(halfNorms.pointer + block * 16).loadUnaligned(as: SIMD16<Float>.self)
                                    guard lanes.max() > best else { continue }
                                    for lane in 0..<16 where lanes[lane] > best {
                                        best = lanes[lane]
                                        label = block * 16 + lane
                                    }
                                }
                                out.pointer[point] = Int32(label)
                            }
                        }
                    }
                }
            }
        }
        return labels
    }

    /// `clusters` centroids of `count` points: seeded with distinct random points; a cell left empty
    /// is re-seeded with a random point.
    static func train(_ points: UnsafePointer<Float>, count: Int, dimension d: Int, clusters: Int, iterations: Int,
                      rng: inout SplitMix64, threads: Int) -> [Float] {
        var order = Array(0..<count)
        order.shuffle(using: &rng)
        var centroids = [Float](repeating: 0, count: clusters * d)
        for cluster in 0..<clusters {
            for j in 0..<d { centroids[cluster * d + j] = points[order[cluster % count] * d + j] }
        }
        for _ in 0..<iterations {
            let labels = assign(points, count: count, dimension: d, centroids: centroids, threads: threads)
            var sums = [Double](repeating: 0, count: clusters * d), sizes = [Int](repeating: 0, count: clusters)
            for point in 0..<count {
                let cluster = Int(labels[point])
                sizes[cluster] += 1
                for j in 0..<d { sums[cluster * d + j] += Double(points[point * d + j]) }
            }
            for cluster in 0..<clusters {
                if sizes[cluster] == 0 {
                    let donor = Int(rng.next() % UInt64(count))
                    for j in 0..<d { centroids[cluster * d + j] = points[donor * d + j] }
                } else {
                    for j in 0..<d { centroids[cluster * d + j] = Float(sums[cluster * d + j] / Double(sizes[cluster])) }
                }
            }
        }
        return centroids
    }

    /// 16 centres for each `width`-value slice (subspace) of `points` (rows of `stride` floats).
    static func trainSubspaces(_ points: UnsafePointer<Float>, count: Int, stride: Int, subspaces: Int, width: Int, iterations: Int,
                               rng: inout SplitMix64) -> [Float] {
        let centres = PartitionedIndex.centres
        var books = [Float](repeating: 0, count: subspaces * centres * width)
        for subspace in 0..<subspaces {
            var centre = [Float](repeating: 0, count: centres * width)
            func reseed(_ c: Int, _ rng: inout SplitMix64) {
                let donor = Int(rng.next() % UInt64(count))
                for t in 0..<width { centre[c * width + t] = points[donor * stride + subspace * width + t] }
            }
            for c in 0..<centres { reseed(c, &rng) }
            for _ in 0..<iterations {
                var sums = [Double](repeating: 0, count: centres * width), sizes = [Int](repeating: 0, count: centres)
                centre.withUnsafeBufferPointer { centre in
                    for point in 0..<count {
                        let slice = points + point * stride + subspace * width
                        let label = Int(nearest(slice, width: width, centre.baseAddress!))
                        for t in 0..<width { sums[label * width + t] += Double(slice[t]) }
                        sizes[label] += 1
                    }
                }
                for c in 0..<centres {
                    if sizes[c] == 0 { reseed(c, &rng); continue }
                    for t in 0..<width { centre[c * width + t] = Float(sums[c * width + t] / Double(sizes[c])) }
                }
            }
            for value in 0..<centres * width { books[subspace * centres * width + value] = centre[value] }
        }
        return books
    }

    /// The closest of the 16 centres (rows of `width` floats) to `slice`.
    @inline(__always)
    static func nearest(_ slice: UnsafePointer<Float>, width: Int, _ centre: UnsafePointer<Float>) -> UInt8 {
        if width == 1 {
            // One value against 16 levels: one vector subtract, square and minimum.
            let delta = SIMD16<Float>(repeating: slice[0]) - UnsafeRawPointer(centre).loadUnaligned(as: SIMD16<Float>.self)
            let distances = delta * delta
            let least = distances.min()
            for c in 0..<PartitionedIndex.centres where distances[c] == least { return UInt8(c) }
        }
        var best: Float = .infinity, label: UInt8 = 0
        for c in 0..<PartitionedIndex.centres {
            var distance: Float = 0
            for t in 0..<width {
                let delta = slice[t] - centre[c * width + t]
                distance += delta * delta
            }
            if distance < best { best = distance; label = UInt8(c) }
        }
        return label
    }
}

extension PartitionedIndex {
    /// Builds an index over `vectors` (rows of `dimension` floats). The same input, parameters and
    /// seed give the same bytes whatever `threads` is.
    public static func build(_ vectors: UnsafeBufferPointer<Float>, dimension d: Int, metric: SimilarityMetric,
                             parameters: PartitionParameters = PartitionParameters(), threads: Int = 1) throws -> PartitionedIndex {
        try parameters.validate()
        guard threads >= 1 else { throw DuetError.invalidValue(field: "threads", reason: "\(threads) must be ≥ 1") }
        guard d >= 1, d <= 65_536, vectors.count % d == 0, vectors.count > 0 else {
            throw DuetError.invalidValue(field: "vectors", reason: "\(vectors.count) values do not form rows of \(d)")
        }
        let count = vectors.count / d
        guard count < Int(UInt32.max) else { throw DuetError.invalidValue(field: "vectors", reason: "too many rows") }
        if let bad = vectors.firstIndex(where: { !$0.isFinite }) {
            throw DuetError.invalidValue(field: "vectors", reason: "row \(bad / d) holds a value that is not finite")
        }
        let partitions = parameters.partitionCount(rows: count)
        var rng = SplitMix64(seed: parameters.seed, 47)

        // Rows as searched: normalised for cosine.
        var data = Array(vectors)
        if metric == .cosine {
            data.withUnsafeMutableBufferPointer { rows in
                for row in 0..<count {
                    let norm = VectorMath.normSquared(rows.baseAddress! + row * d, d).squareRoot()
                    if norm > 0 { for j in 0..<d { rows[row * d + j] /= norm } }
                }
            }
        }
        // Cells: trained on up to 128 rows per cell (faiss uses 39 to 256), then every row assigned.
        let sampleCount = min(count, 128 * partitions)
        var sample = [Float]()
        sample.reserveCapacity(sampleCount * d)
        var order = Array(0..<count)
        order.shuffle(using: &rng)
        for row in order.prefix(sampleCount) { sample.append(contentsOf: data[row * d..<(row + 1) * d]) }
        let centroids = sample.withUnsafeBufferPointer {
            KMeans.train($0.baseAddress!, count: sampleCount, dimension: d, clusters: partitions, iterations: parameters.iterations,
                         rng: &rng, threads: threads)
        }
        let labels = data.withUnsafeBufferPointer {
            KMeans.assign($0.baseAddress!, count: count, dimension: d, centroids: centroids, threads: threads)
        }

        // Residuals from each row's centroid, padded to d′, and 16 centres per two-value subspace.
        let width = parameters.subspaceWidth
        let layoutDimension = (d + 2 * width - 1) / (2 * width) * (2 * width), subspaces = layoutDimension / width, pairs = subspaces / 2
        var residuals = [Float](repeating: 0, count: count * layoutDimension)
        for row in 0..<count {
            let cell = Int(labels[row])
            for j in 0..<d { residuals[row * layoutDimension + j] = data[row * d + j] - centroids[cell * d + j] }
        }
        let bookSample = min(count, 16_384)
        var bookRows = [Float]()
        bookRows.reserveCapacity(bookSample * layoutDimension)
        for row in order.prefix(bookSample) { bookRows.append(contentsOf: residuals[row * layoutDimension..<(row + 1) * layoutDimension]) }
        let books = bookRows.withUnsafeBufferPointer {
            KMeans.trainSubspaces($0.baseAddress!, count: bookSample, stride: layoutDimension, subspaces: subspaces, width: width,
                                  iterations: parameters.iterations, rng: &rng)
        }

        // Positions: rows grouped by cell, in row order within a cell.
        var sizes = [Int](repeating: 0, count: partitions)
        for label in labels { sizes[Int(label)] += 1 }
        var starts = [Int](repeating: 0, count: partitions + 1)
        for cell in 0..<partitions { starts[cell + 1] = starts[cell] + sizes[cell] }
        var blockStarts = [0]
        for cell in 0..<partitions { blockStarts.append(blockStarts[cell] + (sizes[cell] + 31) / 32) }
        let layout = Layout(count: count, dimension: d, partitions: partitions, blocks: blockStarts[partitions], width: width)
        let storage = OwnedBytes(count: layout.fileSize)
        let base = storage.buffer.baseAddress!
        func put(_ value: UInt64, at offset: Int) { base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self) }
        for (offset, byte) in magic.enumerated() { base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self) }
        base.storeBytes(of: formatVersion.littleEndian, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: metric.code.littleEndian, toByteOffset: 12, as: UInt32.self)
        put(UInt64(count), at: 16)
        put(UInt64(d), at: 24)
        put(UInt64(partitions), at: 32)
        put(UInt64(layout.blocks), at: 40)
        put(UInt64(layout.fileSize), at: 48)
        put(UInt64(width), at: 56)
        put(FNV1a64.hash(UnsafeRawBufferPointer(start: base, count: 120)), at: 120)

        let centroidOut = (base + layout.centroidsOffset).assumingMemoryBound(to: Float.self)
        for (index, value) in centroids.enumerated() { centroidOut[index] = value }
        let bookOut = (base + layout.codebooksOffset).assumingMemoryBound(to: Float.self)
        for (index, value) in books.enumerated() { bookOut[index] = value }
        let startOut = (base + layout.startsOffset).assumingMemoryBound(to: UInt32.self)
        for (index, value) in starts.enumerated() { startOut[index] = UInt32(value) }
        let codeOut = (base + layout.codesOffset).assumingMemoryBound(to: UInt8.self)
        let vectorOut = (base + layout.vectorsOffset).assumingMemoryBound(to: Float.self)
        let rowOut = (base + layout.rowsOffset).assumingMemoryBound(to: UInt32.self)
        var filled = [Int](repeating: 0, count: partitions)
        books.withUnsafeBufferPointer { books in
            residuals.withUnsafeBufferPointer { residuals in
            for row in 0..<count {
                let cell = Int(labels[row]), slot = filled[cell]
                filled[cell] += 1
                let position = starts[cell] + slot
                rowOut[position] = UInt32(row)
                for j in 0..<d { vectorOut[position * d + j] = data[row * d + j] }
                let block = codeOut + (blockStarts[cell] + slot / 32) * pairs * 32
                for subspace in 0..<subspaces {
                    let code = KMeans.nearest(residuals.baseAddress! + row * layoutDimension + subspace * width, width: width,
                                              books.baseAddress! + subspace * centres * width)
                    block[(subspace / 2) * 32 + slot % 32] |= subspace % 2 == 0 ? code : code << 4
                }
            }
            }
        }
        return try PartitionedIndex(bytes: UnsafeRawBufferPointer(storage.buffer), owner: storage, path: "(built in memory)")
    }
}
