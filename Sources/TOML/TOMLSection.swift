/// A configuration problem located in its file: the file, the line, the dotted key and what
/// is wrong, in the form `file:line: key: message`, so an owner can go straight to the line.
public struct TOMLConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    /// 1-based; 0 when the problem is a key that is missing altogether.
    public var line: Int
    /// The dotted key, e.g. `gpio.reset.offset`; empty for a syntax error.
    public var key: String
    public var message: String

    public init(file: String, line: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    /// `<what> (<where>)`, as hotspotd says every error.
    public var description: String {
        "\(message) (\(place))"
    }

    /// Where the problem is: `file:line: key`, or what of it is known.
    public var place: String {
        let location = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? location : "\(location): \(key)"
    }
}

/// Reads one table of a configuration file with typed accessors, remembers which keys were
/// read, and refuses the ones nobody asked for: a misspelt key is an error, not a silent default.
///
/// Typical use: read every key the section knows, then call `rejectUnknownKeys()`.
public final class TOMLSection {
    public let table: TOMLTable
    /// The dotted path of this table from the root ("" for the root).
    public let path: String
    public let file: String
    private var consumed: Set<String> = []

    public init(_ table: TOMLTable, path: String = "", file: String) {
        self.table = table
        self.path = path
        self.file = file
    }

    /// Parses `text` and returns its root section; a syntax error becomes a `TOMLConfigError`.
    public static func parse(_ text: String, file: String) throws(TOMLConfigError) -> TOMLSection {
        do {
            return TOMLSection(try TOML.parse(text), file: file)
        } catch {
            throw TOMLConfigError(
                file: file, line: error.line, key: "", message: "column \(error.column): \(error.message)")
        }
    }

    /// The full dotted name of `key` in this section.
    public func qualified(_ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    /// The line that defined `key`, or the section's own line when the key is absent.
    public func line(of key: String) -> Int {
        table.line(of: key) ?? table.line
    }

    public func contains(_ key: String) -> Bool {
        table[key] != nil
    }

    /// An error about `key` of this section, located at its line.
    public func error(_ key: String, _ message: String) -> TOMLConfigError {
        TOMLConfigError(file: file, line: line(of: key), key: qualified(key), message: message)
    }

    private func value(_ key: String) -> TOMLValue? {
        consumed.insert(key)
        return table[key]
    }

    private func mismatch(_ key: String, expected: String, found: TOMLValue) -> TOMLConfigError {
        error(key, "expected \(expected), found \(found.typeDescription)")
    }

    public func string(_ key: String) throws(TOMLConfigError) -> String? {
        guard let found = value(key) else { return nil }
        guard case .string(let text) = found else { throw mismatch(key, expected: "a string", found: found) }
        return text
    }

    public func integer(_ key: String) throws(TOMLConfigError) -> Int64? {
        guard let found = value(key) else { return nil }
        guard case .integer(let number) = found else { throw mismatch(key, expected: "an integer", found: found) }
        return number
    }

    /// An integer that must lie in `range`.
    public func integer(_ key: String, in range: ClosedRange<Int64>) throws(TOMLConfigError) -> Int64? {
        guard let number = try integer(key) else { return nil }
        guard range.contains(number) else {
            throw error(key, "\(number) is out of range (\(range.lowerBound)...\(range.upperBound))")
        }
        return number
    }

    /// A number; integers are accepted where a float is expected.
    public func float(_ key: String) throws(TOMLConfigError) -> Double? {
        guard let found = value(key) else { return nil }
        switch found {
        case .float(let number): return number
        case .integer(let number): return Double(number)
        default: throw mismatch(key, expected: "a number", found: found)
        }
    }

    public func boolean(_ key: String) throws(TOMLConfigError) -> Bool? {
        guard let found = value(key) else { return nil }
        guard case .boolean(let flag) = found else { throw mismatch(key, expected: "true or false", found: found) }
        return flag
    }

    /// A string, or an array of strings (a single string is read as a one-element array).
    public func strings(_ key: String) throws(TOMLConfigError) -> [String]? {
        guard let found = value(key) else { return nil }
        switch found {
        case .string(let text):
            return [text]
        case .array(let elements):
            var texts: [String] = []
            for element in elements {
                guard case .string(let text) = element else {
                    throw error(key, "expected an array of strings, found \(element.typeDescription) in it")
                }
                texts.append(text)
            }
            return texts
        default:
            throw mismatch(key, expected: "a string or an array of strings", found: found)
        }
    }

    /// A nested table, as a section of its own.
    public func section(_ key: String) throws(TOMLConfigError) -> TOMLSection? {
        guard let found = value(key) else { return nil }
        guard case .table(let nested) = found else { throw mismatch(key, expected: "a table", found: found) }
        return TOMLSection(nested, path: qualified(key), file: file)
    }

    /// A value that must be present.
    public func required<T>(_ key: String, _ read: (String) throws(TOMLConfigError) -> T?) throws(TOMLConfigError) -> T
    {
        guard let found = try read(key) else {
            throw TOMLConfigError(file: file, line: 0, key: qualified(key), message: "is required but missing")
        }
        return found
    }

    /// Fails on the first key (in document order) that was never read.
    public func rejectUnknownKeys(known: [String] = []) throws(TOMLConfigError) {
        if let first = unknownKeys(known: known).first { throw first }
    }

    /// An error for each key nobody read, in the file's order, naming the nearest known key.
    public func unknownKeys(known: [String] = []) -> [TOMLConfigError] {
        let expected = known.isEmpty ? consumed.sorted() : known
        return table.keys.filter { !consumed.contains($0) }.sorted { line(of: $0) < line(of: $1) }.map { key in
            var message = "unknown key"
            if let nearest = NearestName.find(key, among: expected) {
                message += "; did you mean '\(nearest)'?"
            }
            if !expected.isEmpty { message += " (expected one of: \(expected.joined(separator: ", ")))" }
            return error(key, message)
        }
    }
}

/// The known name nearest to a misspelt one, for "did you mean" hints.
public enum NearestName {
    /// The candidate at the smallest edit distance from `name` (case ignored), if it is close
    /// enough to be a likely misspelling: at most a third of the name's length, and 3.
    public static func find(_ name: String, among candidates: [String]) -> String? {
        let target = Array(name.lowercased().utf8)
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(target, Array(candidate.lowercased().utf8))
            if distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
        }
        guard let best, best.distance <= min(3, max(1, target.count / 3)) else { return nil }
        return best.name
    }

    /// Levenshtein distance: insertions, deletions and substitutions.
    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
