/// Parses TOML 1.0 documents: tables, arrays of tables, dotted keys, inline tables, arrays,
/// basic and literal strings (single- and multi-line), integers (decimal, hex, octal, binary),
/// floats and booleans. Dates and times are refused with a clear message.
///
/// The parser never traps on malformed input: every failure is a `TOMLSyntaxError` with the
/// line and column where it was found.
public enum TOML {
    /// Parses a whole document into its root table.
    public static func parse(_ text: String) throws(TOMLSyntaxError) -> TOMLTable {
        var parser = Parser(bytes: Array(text.utf8))
        return try parser.parseDocument()
    }
}

/// A table under construction. Reference semantics make nested insertion simple; the finished
/// document is converted to `TOMLTable` values.
private final class TableBuilder {
    enum Entry {
        case value(TOMLValue, line: Int)
        case table(TableBuilder, line: Int)
        case tables([TableBuilder], line: Int)
    }

    var entries: [String: Entry] = [:]
    var order: [String] = []
    let line: Int
    /// Opened by a `[header]` of its own (a second header for it is an error).
    var explicitlyDefined = false
    /// Created by dotted keys inside a key/value line: may not be reopened by a header.
    var definedByDottedKey = false
    /// An inline table or a value table: closed to further keys.
    var sealed = false
    /// How deep the table sits below the root; bounded, since building and freeing recurse.
    let depth: Int

    init(line: Int, depth: Int) {
        self.line = line
        self.depth = depth
    }

    func set(_ key: String, _ entry: Entry) {
        if entries[key] == nil { order.append(key) }
        entries[key] = entry
    }

    func build() -> TOMLTable {
        var table = TOMLTable(line: line)
        for key in order {
            switch entries[key]! {
            case .value(let value, let line):
                table.insert(key, value, line: line)
            case .table(let child, let line):
                table.insert(key, .table(child.build()), line: line)
            case .tables(let children, let line):
                table.insert(key, .array(children.map { .table($0.build()) }), line: line)
            }
        }
        return table
    }
}

private struct Parser {
    let bytes: [UInt8]
    var index = 0
    var line = 1
    var lineStart = 0
    /// Nesting of arrays and inline tables, bounded so hostile input cannot exhaust the stack.
    var depth = 0
    /// The depth of the table the current top-level key/value line belongs to.
    var tableDepth = 0
    static let maximumDepth = 64

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    // MARK: Document

    mutating func parseDocument() throws(TOMLSyntaxError) -> TOMLTable {
        let root = TableBuilder(line: 0, depth: 0)
        root.explicitlyDefined = true
        var current = root
        while true {
            skipWhitespace()
            guard let byte = peek() else { break }
            switch byte {
            case UInt8(ascii: "#"):
                try skipComment()
            case UInt8(ascii: "\n"):
                consumeNewline()
            case UInt8(ascii: "\r"):
                try expectNewline()
            case UInt8(ascii: "["):
                current = try parseHeader(root: root)
                try expectEndOfLine()
            default:
                tableDepth = current.depth
                try parseKeyValue(into: current)
                try expectEndOfLine()
            }
        }
        return root.build()
    }

    mutating func parseHeader(root: TableBuilder) throws(TOMLSyntaxError) -> TableBuilder {
        let headerLine = line
        advance()  // [
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { advance() }
        skipWhitespace()
        let path = try parseKey()
        skipWhitespace()
        try expect("]")
        if isArray { try expect("]") }

        var table = root
        for (position, key) in path.enumerated() {
            let isLast = position == path.count - 1
            if isLast && isArray {
                let fresh = try newTable(line: headerLine, below: table)
                fresh.explicitlyDefined = true
                switch table.entries[key] {
                case nil:
                    table.set(key, .tables([fresh], line: headerLine))
                case .tables(let existing, let line):
                    table.set(key, .tables(existing + [fresh], line: line))
                default:
                    throw error(
                        "'\(path.joined(separator: "."))' is already defined and is not an array of tables",
                        line: headerLine)
                }
                return fresh
            }
            switch table.entries[key] {
            case nil:
                let fresh = try newTable(line: headerLine, below: table)
                table.set(key, .table(fresh, line: headerLine))
                table = fresh
            case .table(let existing, _):
                if existing.sealed {
                    throw error(
                        """
                        '\(path.prefix(position + 1).joined(separator: "."))' is an inline table and cannot be \
                        extended
                        """,
                        line: headerLine)
                }
                table = existing
            case .tables(let existing, _):
                table = existing[existing.count - 1]
            case .value:
                throw error(
                    "'\(path.prefix(position + 1).joined(separator: "."))' is already defined as a value",
                    line: headerLine)
            }
        }
        if table.explicitlyDefined || table.definedByDottedKey {
            throw error("table [\(path.joined(separator: "."))] is defined twice", line: headerLine)
        }
        table.explicitlyDefined = true
        return table
    }

    // MARK: Keys and values

    mutating func parseKeyValue(into table: TableBuilder) throws(TOMLSyntaxError) {
        let keyLine = line
        let path = try parseKey()
        skipWhitespace()
        try expect("=")
        skipWhitespace()
        let value = try parseValue()

        var target = table
        for key in path.dropLast() {
            switch target.entries[key] {
            case nil:
                let fresh = try newTable(line: keyLine, below: target)
                fresh.definedByDottedKey = true
                target.set(key, .table(fresh, line: keyLine))
                target = fresh
            case .table(let existing, _)
            where !existing.sealed && (existing.definedByDottedKey || !existing.explicitlyDefined):
                target = existing
            default:
                throw error(
                    "'\(path.joined(separator: "."))' extends '\(key)', which is already defined", line: keyLine)
            }
        }
        let last = path[path.count - 1]
        if target.entries[last] != nil {
            throw error("'\(path.joined(separator: "."))' is defined twice", line: keyLine)
        }
        target.set(last, .value(value, line: keyLine))
    }

    mutating func parseKey() throws(TOMLSyntaxError) -> [String] {
        var parts: [String] = []
        while true {
            skipWhitespace()
            guard let byte = peek() else { throw error("expected a key, found the end of the file") }
            switch byte {
            case UInt8(ascii: "\""):
                if peek(at: 1) == UInt8(ascii: "\""), peek(at: 2) == UInt8(ascii: "\"") {
                    throw error("a key cannot be a multi-line string")
                }
                parts.append(try parseBasicString())
            case UInt8(ascii: "'"):
                if peek(at: 1) == UInt8(ascii: "'"), peek(at: 2) == UInt8(ascii: "'") {
                    throw error("a key cannot be a multi-line string")
                }
                parts.append(try parseLiteralString())
            default:
                let start = index
                while let b = peek(), Self.isBareKeyByte(b) { advance() }
                if start == index {
                    throw error("expected a key, found \(describe(byte))")
                }
                parts.append(String(decoding: bytes[start..<index], as: UTF8.self))
            }
            skipWhitespace()
            if peek() == UInt8(ascii: ".") {
                advance()
            } else {
                return parts
            }
        }
    }

    mutating func parseValue() throws(TOMLSyntaxError) -> TOMLValue {
        guard let byte = peek() else { throw error("expected a value, found the end of the file") }
        switch byte {
        case UInt8(ascii: "\""):
            if peek(at: 1) == UInt8(ascii: "\""), peek(at: 2) == UInt8(ascii: "\"") {
                return .string(try parseMultilineBasicString())
            }
            return .string(try parseBasicString())
        case UInt8(ascii: "'"):
            if peek(at: 1) == UInt8(ascii: "'"), peek(at: 2) == UInt8(ascii: "'") {
                return .string(try parseMultilineLiteralString())
            }
            return .string(try parseLiteralString())
        case UInt8(ascii: "["):
            return try parseArray()
        case UInt8(ascii: "{"):
            return try parseInlineTable()
        case UInt8(ascii: "t"):
            try expectWord("true")
            return .boolean(true)
        case UInt8(ascii: "f"):
            try expectWord("false")
            return .boolean(false)
        default:
            return try parseNumber()
        }
    }

    mutating func parseArray() throws(TOMLSyntaxError) -> TOMLValue {
        try enterNesting()
        defer { depth -= 1 }
        advance()  // [
        var elements: [TOMLValue] = []
        while true {
            try skipWhitespaceCommentsAndNewlines()
            if peek() == UInt8(ascii: "]") {
                advance()
                return .array(elements)
            }
            elements.append(try parseValue())
            try skipWhitespaceCommentsAndNewlines()
            switch peek() {
            case UInt8(ascii: ","):
                advance()
            case UInt8(ascii: "]"):
                advance()
                return .array(elements)
            case let other:
                throw error("expected ',' or ']' in an array, found \(describe(other))")
            }
        }
    }

    mutating func parseInlineTable() throws(TOMLSyntaxError) -> TOMLValue {
        try enterNesting()
        defer { depth -= 1 }
        let tableLine = line
        advance()  // {
        let table = TableBuilder(line: tableLine, depth: tableDepth + depth)
        if table.depth > Self.maximumDepth {
            throw error("tables are nested more than \(Self.maximumDepth) deep")
        }
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            advance()
            return .table(table.build())
        }
        while true {
            skipWhitespace()
            try parseKeyValue(into: table)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","):
                advance()
            case UInt8(ascii: "}"):
                advance()
                table.sealed = true
                return .table(table.build())
            case let other:
                throw error("expected ',' or '}' in an inline table, found \(describe(other))")
            }
        }
    }

    mutating func parseNumber() throws(TOMLSyntaxError) -> TOMLValue {
        let start = index
        let startColumn = column
        while let b = peek(), Self.isNumberByte(b) { advance() }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if text.isEmpty {
            throw error("expected a value, found \(describe(peek()))")
        }
        if let b = peek(), b == UInt8(ascii: ":") || (b == UInt8(ascii: " ") && text.count == 10 && text.contains("-"))
        {
            throw error("dates and times are not supported; write the value as a string", column: startColumn)
        }
        if let value = Self.integer(from: text) {
            return .integer(value)
        }
        if let value = Self.float(from: text) {
            return .float(value)
        }
        if text.count >= 8, text.filter({ $0 == "-" }).count >= 2 {
            throw error("dates and times are not supported; write the value as a string", column: startColumn)
        }
        throw error("'\(text)' is not a valid value (strings need quotes)", column: startColumn)
    }

    static func integer(from text: String) -> Int64? {
        var body = Substring(text)
        var negative = false
        var signed = false
        if body.first == "+" || body.first == "-" {
            negative = body.first == "-"
            signed = true
            body = body.dropFirst()
        }
        var radix = 10
        if body.hasPrefix("0x") || body.hasPrefix("0o") || body.hasPrefix("0b") {
            if signed { return nil }
            radix = body.hasPrefix("0x") ? 16 : body.hasPrefix("0o") ? 8 : 2
            body = body.dropFirst(2)
        } else if body.count > 1 && body.first == "0" {
            return nil  // leading zeros are not allowed
        }
        guard let digits = digits(body, radix: radix), let magnitude = UInt64(digits, radix: radix) else { return nil }
        if negative {
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    static func float(from text: String) -> Double? {
        var body = Substring(text)
        var sign = 1.0
        if body.first == "+" || body.first == "-" {
            sign = body.first == "-" ? -1 : 1
            body = body.dropFirst()
        }
        if body == "inf" { return sign * .infinity }
        if body == "nan" { return .nan }
        // decimal-integer [ "." digits ] [ ("e" | "E") [sign] digits ], with a fraction or an exponent.
        var mantissa = body
        var exponent: Substring?
        if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = body[..<e]
            exponent = body[body.index(after: e)...]
        }
        var integerPart = mantissa
        var fraction: Substring?
        if let point = mantissa.firstIndex(of: ".") {
            integerPart = mantissa[..<point]
            fraction = mantissa[mantissa.index(after: point)...]
        }
        guard fraction != nil || exponent != nil else { return nil }
        guard let integerDigits = digits(integerPart, radix: 10) else { return nil }
        if integerDigits.count > 1 && integerDigits.first == "0" { return nil }
        var literal = integerDigits
        if let fraction {
            guard let fractionDigits = digits(fraction, radix: 10) else { return nil }
            literal += "." + fractionDigits
        }
        if var exponent {
            var exponentSign = ""
            if exponent.first == "+" || exponent.first == "-" {
                exponentSign = String(exponent.first!)
                exponent = exponent.dropFirst()
            }
            guard let exponentDigits = digits(exponent, radix: 10) else { return nil }
            literal += "e" + exponentSign + exponentDigits
        }
        guard let value = Double(literal) else { return nil }
        return sign * value
    }

    /// The digits of `text` in `radix` with TOML's underscores removed, or nil when a character
    /// is not a digit of the radix, or an underscore does not stand between two digits.
    static func digits(_ text: Substring, radix: Int) -> String? {
        var result = ""
        var previousWasDigit = false
        for character in text {
            if character == "_" {
                guard previousWasDigit else { return nil }
                previousWasDigit = false
                continue
            }
            guard let value = character.hexDigitValue, value < radix else { return nil }
            result.append(character)
            previousWasDigit = true
        }
        return previousWasDigit ? result : nil
    }

    // MARK: Strings

    mutating func parseBasicString() throws(TOMLSyntaxError) -> String {
        advance()  // "
        var scalars = String.UnicodeScalarView()
        var run = index
        func flush(_ parser: Parser, into scalars: inout String.UnicodeScalarView, from start: Int) {
            scalars.append(
                contentsOf: String(decoding: parser.bytes[start..<parser.index], as: UTF8.self).unicodeScalars)
        }
        while true {
            guard let byte = peek() else { throw error("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                flush(self, into: &scalars, from: run)
                advance()
                return String(scalars)
            case UInt8(ascii: "\\"):
                flush(self, into: &scalars, from: run)
                scalars.append(try parseEscape())
                run = index
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                throw error("a single-line string cannot contain a line break")
            case let b where Self.isForbiddenControl(b):
                throw error("control character \(describe(b)) in a string; escape it")
            default:
                advance()
            }
        }
    }

    mutating func parseMultilineBasicString() throws(TOMLSyntaxError) -> String {
        advance(3)
        skipImmediateNewline()
        var scalars = String.UnicodeScalarView()
        var run = index
        while true {
            guard let byte = peek() else { throw error("unterminated multi-line string") }
            if byte == UInt8(ascii: "\""), peek(at: 1) == UInt8(ascii: "\""), peek(at: 2) == UInt8(ascii: "\"") {
                // Up to two quotes may stand right before the closing delimiter.
                var extra = 0
                while extra < 2, peek(at: 3 + extra) == UInt8(ascii: "\"") { extra += 1 }
                advance(extra)
                scalars.append(contentsOf: String(decoding: bytes[run..<index], as: UTF8.self).unicodeScalars)
                advance(3)
                return String(scalars)
            }
            switch byte {
            case UInt8(ascii: "\\"):
                scalars.append(contentsOf: String(decoding: bytes[run..<index], as: UTF8.self).unicodeScalars)
                if Self.isLineEndingBackslash(bytes, index) {
                    advance()
                    try skipWhitespaceCommentsAndNewlines(allowComments: false)
                } else {
                    scalars.append(try parseEscape())
                }
                run = index
            case UInt8(ascii: "\n"):
                consumeNewline()
            case let b where Self.isForbiddenControl(b) && b != UInt8(ascii: "\r"):
                throw error("control character \(describe(b)) in a string; escape it")
            default:
                advance()
            }
        }
    }

    mutating func parseLiteralString() throws(TOMLSyntaxError) -> String {
        advance()  // '
        let start = index
        while true {
            guard let byte = peek() else { throw error("unterminated string") }
            if byte == UInt8(ascii: "'") {
                let text = String(decoding: bytes[start..<index], as: UTF8.self)
                advance()
                return text
            }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                throw error("a single-line string cannot contain a line break")
            }
            if Self.isForbiddenControl(byte) && byte != UInt8(ascii: "\t") {
                throw error("control character \(describe(byte)) in a string")
            }
            advance()
        }
    }

    mutating func parseMultilineLiteralString() throws(TOMLSyntaxError) -> String {
        advance(3)
        skipImmediateNewline()
        let start = index
        while true {
            guard let byte = peek() else { throw error("unterminated multi-line string") }
            if byte == UInt8(ascii: "'"), peek(at: 1) == UInt8(ascii: "'"), peek(at: 2) == UInt8(ascii: "'") {
                var extra = 0
                while extra < 2, peek(at: 3 + extra) == UInt8(ascii: "'") { extra += 1 }
                advance(extra)
                let text = String(decoding: bytes[start..<index], as: UTF8.self)
                advance(3)
                return text
            }
            if byte == UInt8(ascii: "\n") {
                consumeNewline()
            } else {
                advance()
            }
        }
    }

    mutating func parseEscape() throws(TOMLSyntaxError) -> Unicode.Scalar {
        advance()  // backslash
        guard let byte = peek() else { throw error("unterminated escape sequence") }
        advance()
        switch byte {
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "e"): return "\u{1B}"
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = byte == UInt8(ascii: "u") ? 4 : 8
            guard index + count <= bytes.count else { throw error("truncated unicode escape") }
            let hex = String(decoding: bytes[index..<index + count], as: UTF8.self)
            guard let code = UInt32(hex, radix: 16), hex.allSatisfy(\.isHexDigit), let scalar = Unicode.Scalar(code)
            else {
                throw error("'\\\(Character(Unicode.Scalar(byte)))\(hex)' is not a valid unicode escape")
            }
            advance(count)
            return scalar
        default:
            throw error("unknown escape sequence '\\\(describeRaw(byte))'")
        }
    }

    // MARK: Lexical helpers

    var column: Int { index - lineStart + 1 }

    func peek(at offset: Int = 0) -> UInt8? {
        let position = index + offset
        return position < bytes.count ? bytes[position] : nil
    }

    mutating func advance(_ count: Int = 1) {
        index = min(index + count, bytes.count)
    }

    mutating func consumeNewline() {
        advance()
        line += 1
        lineStart = index
    }

    mutating func expectNewline() throws(TOMLSyntaxError) {
        if peek() == UInt8(ascii: "\r") && peek(at: 1) == UInt8(ascii: "\n") {
            advance()
            consumeNewline()
        } else if peek() == UInt8(ascii: "\n") {
            consumeNewline()
        } else {
            throw error("a carriage return must be followed by a line feed")
        }
    }

    mutating func skipImmediateNewline() {
        if peek() == UInt8(ascii: "\n") {
            consumeNewline()
        } else if peek() == UInt8(ascii: "\r"), peek(at: 1) == UInt8(ascii: "\n") {
            advance()
            consumeNewline()
        }
    }

    mutating func skipWhitespace() {
        while let b = peek(), b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { advance() }
    }

    mutating func skipComment() throws(TOMLSyntaxError) {
        while let b = peek(), b != UInt8(ascii: "\n") {
            if b == UInt8(ascii: "\r") && peek(at: 1) == UInt8(ascii: "\n") { break }
            if Self.isForbiddenControl(b) && b != UInt8(ascii: "\t") {
                throw error("control character \(describe(b)) in a comment")
            }
            advance()
        }
    }

    mutating func skipWhitespaceCommentsAndNewlines(allowComments: Bool = true) throws(TOMLSyntaxError) {
        while let b = peek() {
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"):
                advance()
            case UInt8(ascii: "\n"):
                consumeNewline()
            case UInt8(ascii: "\r"):
                try expectNewline()
            case UInt8(ascii: "#") where allowComments:
                try skipComment()
            default:
                return
            }
        }
    }

    mutating func expectEndOfLine() throws(TOMLSyntaxError) {
        skipWhitespace()
        if peek() == UInt8(ascii: "#") { try skipComment() }
        switch peek() {
        case nil: return
        case UInt8(ascii: "\n"): consumeNewline()
        case UInt8(ascii: "\r"): try expectNewline()
        case let other: throw error("expected the end of the line, found \(describe(other))")
        }
    }

    mutating func expect(_ character: Unicode.Scalar) throws(TOMLSyntaxError) {
        guard peek() == UInt8(character.value) else {
            throw error("expected '\(character)', found \(describe(peek()))")
        }
        advance()
    }

    mutating func expectWord(_ word: String) throws(TOMLSyntaxError) {
        let expected = Array(word.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<index + expected.count]) == expected else {
            throw error("expected a value, found \(describe(peek()))")
        }
        advance(expected.count)
        if let b = peek(), Self.isBareKeyByte(b) {
            throw error("expected a value, found \(describe(peek(at: -expected.count)))")
        }
    }

    func newTable(line: Int, below parent: TableBuilder) throws(TOMLSyntaxError) -> TableBuilder {
        guard parent.depth < Self.maximumDepth else {
            throw error("tables are nested more than \(Self.maximumDepth) deep", line: line)
        }
        return TableBuilder(line: line, depth: parent.depth + 1)
    }

    mutating func enterNesting() throws(TOMLSyntaxError) {
        depth += 1
        if depth > Self.maximumDepth {
            throw error("arrays and inline tables are nested more than \(Self.maximumDepth) deep")
        }
    }

    func error(_ message: String, line: Int? = nil, column: Int? = nil) -> TOMLSyntaxError {
        TOMLSyntaxError(line: line ?? self.line, column: line == nil ? (column ?? self.column) : 1, message: message)
    }

    func describe(_ byte: UInt8?) -> String {
        guard let byte else { return "the end of the file" }
        switch byte {
        case UInt8(ascii: "\n"), UInt8(ascii: "\r"): return "the end of the line"
        case 0x20...0x7E: return "'\(Character(Unicode.Scalar(byte)))'"
        default: return "byte 0x\(String(byte, radix: 16, uppercase: true))"
        }
    }

    func describeRaw(_ byte: UInt8) -> String {
        (0x20...0x7E).contains(byte) ? String(Character(Unicode.Scalar(byte))) : "x\(String(byte, radix: 16))"
    }

    static func isBareKeyByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }

    static func isNumberByte(_ b: UInt8) -> Bool {
        isBareKeyByte(b) || b == UInt8(ascii: "+") || b == UInt8(ascii: ".")
    }

    static func isForbiddenControl(_ b: UInt8) -> Bool {
        (b < 0x20 && b != UInt8(ascii: "\t")) || b == 0x7F
    }

    static func isLineEndingBackslash(_ bytes: [UInt8], _ start: Int) -> Bool {
        var position = start + 1
        while position < bytes.count, bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t") {
            position += 1
        }
        return position < bytes.count
            && (bytes[position] == UInt8(ascii: "\n") || bytes[position] == UInt8(ascii: "\r"))
    }
}
