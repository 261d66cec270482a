public import DuetCore

/// Which items a similar-items search may return: the exclusions every request has (unavailable
/// items, the query item, items the caller excludes), and, when catalogue predicates narrow the
/// search, the items that match them. Tested on each candidate inside the search.
public struct ItemFilter: SearchFilter, Sendable {
    public var excluded: ExclusionSet
    /// Nil, or exactly the items the predicates allow (before `excluded`), as a set and as a list
    /// (the list lets a small allowed set be scanned exactly instead of searched through the graph).
    public var allowed: ItemSet?
    public var allowedItems: [Int32]?

    public init(excluded: ExclusionSet, allowed: [Int32]? = nil, capacity: Int = 0) {
        self.excluded = excluded
        if let allowed {
            self.allowed = ItemSet(capacity: capacity, excluding: allowed.lazy.map { Int($0) })
            allowedItems = allowed
        }
    }

    @inline(__always) public func rejects(_ id: Int) -> Bool {
        if excluded.contains(id) { return true }
        if let allowed { return !allowed.contains(id) }
        return false
    }

    public var admitsEverything: Bool { allowed == nil && excluded.isEmpty }

    public mutating func exclude(_ id: Int) { excluded.insert(id) }
}

/// One catalogue condition, written `key=value` or `key!=value`: `genre=jazz`, `explicit=false`,
/// `artist=Nina Simone`. `genre` and `tag` test the item's tags (unless the catalogue has a `genre`
/// attribute), `artist` its artist, any other key its named attribute.
public struct ItemPredicate: Hashable, Sendable, CustomStringConvertible {
    public var key: String
    public var value: String
    public var negated: Bool

    public init(key: String, value: String, negated: Bool = false) {
        self.key = key
        self.value = value
        self.negated = negated
    }

    public static let maximumCount = 8

    /// The key is letters, digits, '_' and '-'; the first character after it must start `=` or `!=`;
    /// the rest is the value (1–200 characters, no control characters), so `a=b!=c` means a = "b!=c".
    public static func parse(_ text: String) throws(DuetError) -> ItemPredicate {
        let scalars = Array(text.unicodeScalars)
        let keyLength = scalars.prefix {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        }.count
        let negated = keyLength < scalars.count && scalars[keyLength] == "!"
        let valueStart = keyLength + (negated ? 2 : 1)
        guard keyLength > 0, valueStart <= scalars.count, scalars[valueStart - 1] == "=", valueStart < scalars.count else {
            throw .invalidValue(field: "filter", reason: "'\(text.prefix(80))' must be key=value or key!=value (key: letters, digits, '_' and '-'), e.g. genre=jazz")
        }
        guard keyLength <= 64 else { throw .invalidValue(field: "filter", reason: "the attribute name is longer than 64 characters") }
        let value = scalars[valueStart...]
        guard value.count <= 200 else { throw .invalidValue(field: "filter", reason: "the value is longer than 200 characters") }
        guard !value.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalidValue(field: "filter", reason: "the value holds a control character")
        }
        var key = String.UnicodeScalarView(), valueText = String.UnicodeScalarView()
        key.append(contentsOf: scalars[..<keyLength])
        valueText.append(contentsOf: value)
        return ItemPredicate(key: String(key).lowercased(), value: String(valueText), negated: negated)
    }

    /// The accepted form as a regular expression, for /openapi.json (must match `parse`).
    public static let pattern = #"^[A-Za-z0-9_-]{1,64}!?=[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$"#

    /// Parses every filter, refusing more than `maximumCount`.
    public static func parse(all texts: [String]) throws(DuetError) -> [ItemPredicate] {
        guard texts.count <= maximumCount else { throw .invalidValue(field: "filter", reason: "at most \(maximumCount) filters, got \(texts.count)") }
        var predicates: [ItemPredicate] = []
        for text in texts { predicates.append(try parse(text)) }
        return predicates
    }

    public var description: String { "\(key)\(negated ? "!=" : "=")\(value)" }
}

/// The catalogue's values as posting lists (key → value → rows, ascending), built once when an
/// index or bundle loads, so a predicate costs its list's length, not a pass over the catalogue.
public struct CatalogAttributes: Sendable {
    private let postings: [String: [String: [Int32]]]
    public let itemCount: Int

    public init(itemIDs: [String], catalog: [String: CatalogItem]) {
        var postings: [String: [String: [Int32]]] = [:]
        for (row, id) in itemIDs.enumerated() {
            guard let item = catalog[id] else { continue }
            for tag in Set(item.tags) { postings["tag", default: [:]][tag, default: []].append(Int32(row)) }
            if let artist = item.artist { postings["artist", default: [:]][artist, default: []].append(Int32(row)) }
            for (key, value) in item.attributes ?? [:] { postings[key.lowercased(), default: [:]][value, default: []].append(Int32(row)) }
        }
        self.postings = postings
        itemCount = itemIDs.count
    }

    /// The attribute names an index can filter on.
    public var keys: [String] { postings.keys.sorted() }

    func rows(_ predicate: ItemPredicate) -> [Int32] {
        let key = predicate.key == "genre" && postings["genre"] == nil ? "tag" : predicate.key
        return postings[key]?[predicate.value] ?? []
    }

    /// The filter for `predicates` on top of `base`: rows every positive predicate allows (their
    /// lists intersected), minus every negated predicate's rows.
    public func filter(_ predicates: [ItemPredicate], base: ExclusionSet) -> ItemFilter {
        var excluded = base
        var allowed: [Int32]?
        for predicate in predicates {
            let rows = self.rows(predicate)
            if predicate.negated {
                for row in rows { excluded.insert(Int(row)) }
            } else if let current = allowed {
                allowed = Self.intersect(current, rows)
            } else {
                allowed = rows
            }
        }
        return ItemFilter(excluded: excluded, allowed: allowed, capacity: itemCount)
    }

    static func intersect(_ a: [Int32], _ b: [Int32]) -> [Int32] {
        var result: [Int32] = [], i = 0, j = 0
        while i < a.count, j < b.count {
            if a[i] == b[j] { result.append(a[i]); i += 1; j += 1 } else if a[i] < b[j] { i += 1 } else { j += 1 }
        }
        return result
    }
}
