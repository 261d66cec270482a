public import DuetTraining
import DuetCore
import Foundation

/// `user<TAB>item<TAB>weight` files without a header, as the peer benchmark writes them. Several
/// files are read over one shared index space (ids sorted), so train and test line up.
public enum TripletFile {
    public static func readMatrices(_ paths: [String]) throws -> (matrices: [InteractionMatrix], users: [String], items: [String]) {
        var rows: [[(String, String, Float)]] = []
        var userSet = Set<String>(), itemSet = Set<String>()
        for path in paths {
            var fileRows: [(String, String, Float)] = []
            let splitter = FieldSplitter(delimiter: "\t", quoting: false)
            var fields: [String] = []
            try LineReader(path: path).forEachLine { line, number in
                if line.isEmpty { return }
                do { try splitter.split(line, into: &fields) } catch let error as FieldError {
                    throw DuetError.malformedRow(file: path, line: number, reason: error.reason)
                }
                guard fields.count == 3 else {
                    throw DuetError.malformedRow(file: path, line: number, reason: "expected 3 fields (user, item, weight), found \(fields.count)")
                }
                guard let weight = Float(fields[2]), weight.isFinite, weight >= 0 else {
                    throw DuetError.malformedRow(file: path, line: number, reason: "weight '\(fields[2])' is not a non-negative number")
                }
                fileRows.append((fields[0], fields[1], weight))
                userSet.insert(fields[0])
                itemSet.insert(fields[1])
            }
            rows.append(fileRows)
        }
        let users = userSet.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let items = itemSet.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let userIndex = Dictionary(uniqueKeysWithValues: users.enumerated().map { ($1, $0) })
        let itemIndex = Dictionary(uniqueKeysWithValues: items.enumerated().map { ($1, $0) })
        let matrices = rows.map { fileRows in
            InteractionMatrix(rows: users.count, columns: items.count,
                              triples: fileRows.map { (userIndex[$0.0]!, itemIndex[$0.1]!, $0.2) })
        }
        return (matrices, users, items)
    }
}
