import Synchronization

/// What users consumed since the bundle was trained, from ingested events: bounded in users and
/// in items per user, so a track played a minute ago is not recommended again.
final class RecentHistory: Sendable {
    private let entries = Mutex<[String: [String]]>([:])
    let maxUsers: Int
    let itemsPerUser: Int

    init(maxUsers: Int = 200_000, itemsPerUser: Int = 100) {
        self.maxUsers = maxUsers
        self.itemsPerUser = itemsPerUser
    }

    func record(user: String, item: String) {
        entries.withLock { table in
            if table.count >= maxUsers, table[user] == nil {
                // Crude but bounded: forget a tenth of the users.
                for key in table.keys.prefix(max(1, maxUsers / 10)) { table.removeValue(forKey: key) }
            }
            var items = table[user] ?? []
            if !items.contains(item) {
                items.append(item)
                if items.count > itemsPerUser { items.removeFirst(items.count - itemsPerUser) }
            }
            table[user] = items
        }
    }

    func items(of user: String) -> [String] { entries.withLock { $0[user] ?? [] } }
}
