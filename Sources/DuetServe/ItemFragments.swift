import DuetCore

/// Every item's JSON, rendered once per bundle as the two pieces around its score:
/// `{"id":"…","score":` and `,"title":"…","artist":"…"}`. A response then copies bytes instead of
/// looking up, retaining and escaping twenty catalogue entries per request.
struct ItemFragments: Sendable {
    private let bytes: [UInt8]
    /// Per item: where its prefix starts and where its suffix starts; the next item's prefix start
    /// (or the end) closes the suffix.
    private let starts: [UInt32]

    init(bundle: ModelBundle) {
        var bytes: [UInt8] = []
        var starts: [UInt32] = []
        starts.reserveCapacity(2 * bundle.itemCount + 1)
        for item in 0..<bundle.itemCount {
            let id = bundle.itemIDs[item]
            starts.append(UInt32(bytes.count))
            bytes.append(contentsOf: #"{"id":"#.utf8)
            bytes.append(contentsOf: Self.quoted(id))
            bytes.append(contentsOf: #","score":"#.utf8)
            starts.append(UInt32(bytes.count))
            if let entry = bundle.catalog[id] {
                bytes.append(contentsOf: #","title":"#.utf8)
                bytes.append(contentsOf: Self.quoted(entry.title))
                if let artist = entry.artist {
                    bytes.append(contentsOf: #","artist":"#.utf8)
                    bytes.append(contentsOf: Self.quoted(artist))
                }
            }
            bytes.append(UInt8(ascii: "}"))
            precondition(bytes.count < Int(UInt32.max), "item JSON for \(bundle.itemCount) items passes 4 GiB")
        }
        starts.append(UInt32(bytes.count))
        self.bytes = bytes
        self.starts = starts
    }

    /// A JSON string literal, escaped as JSONWriter escapes.
    private static func quoted(_ text: String) -> [UInt8] {
        var json = JSONWriter(capacity: text.utf8.count + 2)
        json.string(text)
        return json.bytes
    }

    /// Writes item `item` with `score` (and its `because`, when explained) as the next value of the
    /// array `json` is in.
    func write(item: Int, score: Float, because: Because? = nil, into json: inout JSONWriter) {
        let prefix = Int(starts[2 * item]), suffix = Int(starts[2 * item + 1]), end = Int(starts[2 * item + 2])
        bytes.withUnsafeBufferPointer { all in
            json.rawValue(UnsafeBufferPointer(rebasing: all[prefix..<suffix]))
            json.rawNumber(score)
            guard let because else { return json.raw(UnsafeBufferPointer(rebasing: all[suffix..<end])) }
            // The suffix without its closing brace, then the explanation, then the brace.
            json.raw(UnsafeBufferPointer(rebasing: all[suffix..<(end - 1)]))
            var inner = JSONWriter(capacity: 96)
            inner.beginObject()
            inner.key("id"); inner.string(because.id)
            if let title = because.title { inner.key("title"); inner.string(title) }
            inner.key("similarity"); inner.number(because.similarity)
            inner.endObject()
            let tail = Array(#","because":"#.utf8) + inner.bytes + [UInt8(ascii: "}")]
            tail.withUnsafeBufferPointer { json.raw($0) }
        }
    }
}
