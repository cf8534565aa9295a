import Testing

@testable import Wire

@Suite struct JSONTests {
    @Test func parsesObjectsArraysAndScalars() throws {
        let value = try JSON.parse(
            Array(#"{"a":[1,-2.5,3e2,true,false,null],"b":"x\"y\u00e9\ud83d\ude00","c":{}}"#.utf8))
        #expect(value["a"] == .array([.number(1), .number(-2.5), .number(300), .bool(true), .bool(false), .null]))
        #expect(value["b"] == .string("x\"yé😀"))
        #expect(value["c"] == .object([]))
        #expect(value["missing"] == nil)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "\"\\x\"", "\"\u{01}\"", "[1] x", "{\"a\":1,}",
        "\"\\ud800\"", "tru", "nul", "1e999",
    ])
    func refusesMalformedText(_ text: String) {
        #expect(throws: JSONError.self) { try JSON.parse(Array(text.utf8)) }
    }

    @Test func refusesDeepNesting() {
        #expect(throws: JSONError.self) {
            try JSON.parse(
                Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8))
        }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONError.self) { try JSON.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func serializesAndRoundTrips() throws {
        let value = JSONValue.object([
            ("imme", .bool(true)), ("freq", .number(869.525)), ("size", .number(12)), ("s", .string("a\"b\n")),
        ])
        let text = JSON.serialize(value)
        #expect(text == #"{"imme":true,"freq":869.525,"size":12,"s":"a\"b\n"}"#)
        #expect(try JSON.parse(Array(text.utf8)) == value)
    }

    @Test func integersAreRecognisedOnlyWhenWholeAndInRange() throws {
        #expect(JSONValue.number(3_512_348_611).integer(in: 0...Int64(UInt32.max)) == 3_512_348_611)
        #expect(JSONValue.number(1.5).integer(in: 0...10) == nil)
        #expect(JSONValue.number(-1).integer(in: 0...10) == nil)
        #expect(JSONValue.string("1").integer(in: 0...10) == nil)
    }
}

@Suite struct Base64Tests {
    /// RFC 4648 §10.
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ])
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test func acceptsMissingPaddingAndRefusesOtherAlphabets() {
        #expect(Base64.decode("Zm9vYg") == Array("foob".utf8))
        #expect(Base64.decode("Zm9vYmE") == Array("fooba".utf8))
        #expect(Base64.decode("-DS4") == nil, "URL-safe characters are not standard Base64")
        #expect(Base64.decode("Zm9v YmFy") == nil)
        #expect(Base64.decode("Z") == nil)
        #expect(Base64.decode("Zg=") == nil)
        #expect(Base64.decode("Zh==") == Array("f".utf8), "leftover bits are ignored, as PROTOCOL.TXT's example needs")
    }

    @Test func roundTripsEveryLength() {
        for length in 0..<300 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
    }
}
