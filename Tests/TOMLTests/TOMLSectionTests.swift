import TOML
import Testing

@Suite struct TOMLSectionTests {
    @Test func unknownKeyIsReportedWithFileLineAndKey() throws {
        let root = try TOMLSection.parse(
            "name = \"x\"\n[spi]\ndevice = \"/dev/spidev0.0\"\nsped_hz = 8\n", file: "board.toml")
        _ = try root.string("name")
        let spi = try #require(try root.section("spi"))
        _ = try spi.string("device")
        _ = try spi.integer("speed_hz")
        #expect(
            throws: TOMLConfigError(
                file: "board.toml", line: 4, key: "spi.sped_hz",
                message: "unknown key; did you mean 'speed_hz'? (expected one of: device, speed_hz)")
        ) {
            try spi.rejectUnknownKeys()
        }
    }

    @Test func wrongTypeNamesBothTypes() throws {
        let root = try TOMLSection.parse("offset = \"17\"", file: "f.toml")
        do {
            _ = try root.integer("offset")
            Issue.record("accepted a string as an integer")
        } catch {
            #expect(error.description == "expected an integer, found a string (f.toml:1: offset)")
        }
    }

    @Test func rangeIsChecked() throws {
        let root = try TOMLSection.parse("pulse_ms = 20000", file: "f.toml")
        #expect(throws: TOMLConfigError.self) { try root.integer("pulse_ms", in: 0...10_000) }
    }

    @Test func syntaxErrorsBecomeConfigErrorsWithTheLine() {
        do {
            _ = try TOMLSection.parse("a = 1\nb = \n", file: "f.toml")
            Issue.record("parsed")
        } catch {
            #expect(error.file == "f.toml")
            #expect(error.line == 2)
        }
    }

    @Test func missingRequiredKeyIsNamed() throws {
        let root = try TOMLSection.parse("", file: "f.toml")
        #expect(throws: TOMLConfigError(file: "f.toml", line: 0, key: "radio", message: "is required but missing")) {
            try root.required("radio", root.string)
        }
    }
}
