/// A TOML document that does not parse: where, and why.
public struct TOMLSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based line and column of the offending character.
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { "line \(line), column \(column): \(message)" }
}
