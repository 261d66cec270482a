public import DuetCore
public import Foundation

/// Collects interactions in compact columns, then folds them into canonical CSR form
/// (ids sorted, rows sorted), so the same input always gives the same bytes and the same hash.
public final class SnapshotBuilder {
    private var userIndex: [String: UInt32] = [:]
    private var itemIndex: [String: UInt32] = [:]
    private var userIDs: [String] = []
    private var itemIDs: [String] = []
    private var rowUsers: [UInt32] = []
    private var rowItems: [UInt32] = []
    private var rowWeights: [Float] = []
    private var rowTimes: [EpochMillis] = []

    public init() {}

    public var rowCount: Int { rowUsers.count }

    public func add(user: String, item: String, weight: Float, timestamp: EpochMillis) {
        rowUsers.append(Self.intern(user, in: &userIndex, ids: &userIDs))
        rowItems.append(Self.intern(item, in: &itemIndex, ids: &itemIDs))
        rowWeights.append(weight)
        rowTimes.append(timestamp)
    }

    private static func intern(_ id: String, in index: inout [String: UInt32], ids: inout [String]) -> UInt32 {
        if let existing = index[id] { return existing }
        let next = UInt32(ids.count)
        index[id] = next
        ids.append(id)
        return next
    }

    /// Ids sorted by their UTF-8 bytes, and the map from insertion index to sorted index.
    private static func canonicalOrder(_ ids: [String]) -> (sorted: [String], remap: [UInt32]) {
        let order = ids.indices.sorted { ids[$0].utf8.lexicographicallyPrecedes(ids[$1].utf8) }
        var remap = [UInt32](repeating: 0, count: ids.count)
        for (position, original) in order.enumerated() { remap[original] = UInt32(position) }
        return (order.map { ids[$0] }, remap)
    }

    /// Duplicate (user, item) pairs are summed, keeping the latest time.
    public func columns() -> SnapshotColumns {
        let (users, userRemap) = Self.canonicalOrder(userIDs)
        let (items, itemRemap) = Self.canonicalOrder(itemIDs)
        // Counting sort by user, then sort each row by item.
        var rowStart = [UInt64](repeating: 0, count: users.count + 1)
        for user in rowUsers { rowStart[Int(userRemap[Int(user)]) + 1] += 1 }
        for index in 0..<users.count { rowStart[index + 1] += rowStart[index] }
        var fill = rowStart
        var order = [Int](repeating: 0, count: rowUsers.count)
        for (row, user) in rowUsers.enumerated() {
            let slot = Int(fill[Int(userRemap[Int(user)])])
            order[slot] = row
            fill[Int(userRemap[Int(user)])] += 1
        }
        var outStart: [UInt64] = [0]
        outStart.reserveCapacity(users.count + 1)
        var outItems: [UInt32] = []
        var outWeights: [Float] = []
        var outTimes: [EpochMillis] = []
        outItems.reserveCapacity(rowUsers.count)
        outWeights.reserveCapacity(rowUsers.count)
        outTimes.reserveCapacity(rowUsers.count)
        for user in 0..<users.count {
            var segment = order[Int(rowStart[user])..<Int(rowStart[user + 1])].map { ($0, itemRemap[Int(rowItems[$0])]) }
            // Ties broken by insertion order keep the float sums deterministic.
            segment.sort { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
            for (row, item) in segment {
                if let last = outItems.last, outItems.count > Int(outStart[user]), last == item {
                    outWeights[outWeights.count - 1] += rowWeights[row]
                    outTimes[outTimes.count - 1] = max(outTimes[outTimes.count - 1], rowTimes[row])
                } else {
                    outItems.append(item)
                    outWeights.append(rowWeights[row])
                    outTimes.append(rowTimes[row])
                }
            }
            outStart.append(UInt64(outItems.count))
        }
        return SnapshotColumns(userIDs: users, itemIDs: items, rowStart: outStart, items: outItems,
                               weights: outWeights, times: outTimes)
    }

    /// Writes the snapshot into `folder` and returns its hash.
    public func write(into folder: URL) throws -> String {
        try SnapshotWriter.write(columns(), into: folder)
    }
}
