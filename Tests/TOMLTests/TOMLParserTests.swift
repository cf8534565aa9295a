import TestSupport
import Testing

@testable import TOML

@Suite(.capturingLogs) struct TOMLParserTests {
    @Test func parsesScalarsTablesAndComments() throws {
        let document = try TOML.parse(
            """
            # comment
            name = "mock"   # trailing comment
            count = 1_000
            hex = 0xFF
            octal = 0o17
            binary = 0b101
            negative = -42
            ratio = 2.5
            exponent = 1e3
            on = true
            off = false

            [spi]
            device = '/dev/spidev0.0'
            """)
        #expect(document["name"] == .string("mock"))
        #expect(document["count"] == .integer(1000))
        #expect(document["hex"] == .integer(255))
        #expect(document["octal"] == .integer(15))
        #expect(document["binary"] == .integer(5))
        #expect(document["negative"] == .integer(-42))
        #expect(document["ratio"] == .float(2.5))
        #expect(document["exponent"] == .float(1000))
        #expect(document["on"] == .boolean(true))
        #expect(document["off"] == .boolean(false))
        guard case .table(let spi) = document["spi"] else {
            Issue.record("spi is not a table")
            return
        }
        #expect(spi["device"] == .string("/dev/spidev0.0"))
        #expect(spi.line == 13)
        #expect(spi.line(of: "device") == 14)
        #expect(document.line(of: "count") == 3)
    }

    @Test func parsesStringEscapesAndMultilineStrings() throws {
        let document = try TOML.parse(
            #"""
            basic = "tab\there \"quoted\" \u00E9 \U0001F600"
            multi = """
            first
            second"""
            folded = """one \
                     two"""
            literal = '''C:\path\n'''
            """#)
        #expect(document["basic"] == .string("tab\there \"quoted\" é 😀"))
        #expect(document["multi"] == .string("first\nsecond"))
        #expect(document["folded"] == .string("one two"))
        #expect(document["literal"] == .string(#"C:\path\n"#))
    }

    @Test func parsesArraysInlineTablesDottedKeysAndArraysOfTables() throws {
        let document = try TOML.parse(
            """
            chips = [
              "pinctrl-rp1",   # Pi 5
              "pinctrl-bcm2711",
            ]
            reset = { offset = 17, active_low = true }
            a.b.c = 1
            [[board]]
            name = "one"
            [[board]]
            name = "two"
            """)
        #expect(document["chips"] == .array([.string("pinctrl-rp1"), .string("pinctrl-bcm2711")]))
        guard case .table(let reset) = document["reset"], case .table(let a) = document["a"],
            case .table(let b) = a["b"]
        else {
            Issue.record("tables missing")
            return
        }
        #expect(reset["offset"] == .integer(17))
        #expect(reset["active_low"] == .boolean(true))
        #expect(b["c"] == .integer(1))
        guard case .array(let boards) = document["board"] else {
            Issue.record("board is not an array")
            return
        }
        #expect(boards.count == 2)
        if case .table(let second) = boards[1] {
            #expect(second["name"] == .string("two"))
        }
    }

    @Test(arguments: [
        ("a = 1\na = 2", 2, "defined twice"),
        ("[t]\n[t]", 2, "defined twice"),
        ("s = \"open", 1, "unterminated"),
        ("x = nope", 1, "not a valid value"),
        ("when = 2024-01-01", 1, "dates and times are not supported"),
        ("\n\nx = 1 2", 3, "end of the line"),
        ("x = [1, 2", 1, "expected ',' or ']'"),
        ("x = 012", 1, "not a valid value"),
        ("x = 1__0", 1, "not a valid value"),
        ("x = \"\\q\"", 1, "unknown escape"),
        ("= 1", 1, "expected a key"),
        ("t = { a = 1 }\n[t]", 2, "already defined"),
        ("t = { a = 1 }\n[t.b]", 2, "already defined"),
        ("x = 99999999999999999999", 1, "not a valid value"),
        ("x = 0x+5", 1, "not a valid value"),
        ("x = +-0", 1, "not a valid value"),
        ("x = 1_e5", 1, "not a valid value"),
        ("x = 1e", 1, "not a valid value"),
        ("x = .5", 1, "not a valid value"),
        ("x = 5.", 1, "not a valid value"),
        ("x = 0b102", 1, "not a valid value"),
    ])
    func refusesMalformedDocumentsWithTheirLine(text: String, line: Int, message: String) {
        do {
            _ = try TOML.parse(text)
            Issue.record("parsed: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func parsesNumbersAtTheirEdges() throws {
        let document = try TOML.parse(
            "a = 0xdead_BEEF\nb = -9223372036854775808\nc = 6.02e+23\nd = 1_000.5\ne = -inf\nf = 0.0\ng = 0")
        #expect(document["a"] == .integer(0xDEAD_BEEF))
        #expect(document["b"] == .integer(Int64.min))
        #expect(document["c"] == .float(6.02e23))
        #expect(document["d"] == .float(1000.5))
        #expect(document["e"] == .float(-.infinity))
        #expect(document["f"] == .float(0))
        #expect(document["g"] == .integer(0))
    }

    static let deeplyNested: [String] = {
        let deepKey: String = Array(repeating: "a", count: 100_000).joined(separator: ".")
        let headers: [String] = (0..<200).map { depth in
            "[" + Array(repeating: "a", count: depth + 1).joined(separator: ".") + "]"
        }
        let keyUnderTable: String = Array(repeating: "b", count: 65).joined(separator: ".")
        return [
            "x = " + String(repeating: "[", count: 10_000),
            "x = " + String(repeating: "{a=", count: 10_000),
            deepKey + " = 1",
            "[" + deepKey + "]",
            headers.joined(separator: "\n"),
            "[a]\n" + keyUnderTable + " = 1",
        ]
    }()

    @Test(arguments: deeplyNested)
    func refusesDeepNestingWithoutCrashing(text: String) {
        do {
            _ = try TOML.parse(text)
            Issue.record("parsed a document nested deeper than the limit")
        } catch {
            #expect(error.message.contains("nested more than 64 deep"), "\(error)")
        }
    }

    @Test func survivesArbitraryBytes() {
        // Any input either parses or throws; none may trap. Seeded, so a failure reproduces.
        var generator = SplitMix64(seed: 0x5EED_2026)
        let alphabet = Array("[]{}=.\"'#\n\t ,abc123_-+eE:\\".utf8)
        var parsed = 0
        var refused = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<40, using: &generator)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            if (try? TOML.parse(String(decoding: bytes, as: UTF8.self))) != nil {
                parsed += 1
            } else {
                refused += 1
            }
        }
        #expect(parsed > 0 && refused > 0, "the inputs exercise both outcomes")
    }
}

/// A small deterministic generator for reproducible random inputs.
