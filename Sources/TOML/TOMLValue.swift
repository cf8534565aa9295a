/// A value of a TOML document.
///
/// Offset dates and times are not represented: hotspotd's files have no use for them, and the
/// parser refuses them with a message rather than guessing.
public enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    /// The TOML name of the value's type, for error messages ("expected an integer, found a string").
    public var typeDescription: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a float"
        case .boolean: "a boolean"
        case .array: "an array"
        case .table: "a table"
        }
    }
}

/// A TOML table that remembers, for each key, the line that defined it, so that a
/// configuration error can name the line as well as the key.
public struct TOMLTable: Equatable, Sendable {
    /// The keys in the order the document defined them.
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]
    private var lines: [String: Int] = [:]
    /// The line of the table's header, or of the first key that created it; 0 for the root.
    public var line: Int

    public init(line: Int = 0) {
        self.line = line
    }

    public subscript(key: String) -> TOMLValue? {
        values[key]
    }

    /// The 1-based line on which `key` was defined.
    public func line(of key: String) -> Int? {
        lines[key]
    }

    public var isEmpty: Bool { keys.isEmpty }

    mutating func insert(_ key: String, _ value: TOMLValue, line: Int) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
        lines[key] = line
    }
}
