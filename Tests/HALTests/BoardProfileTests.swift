import Clocks
import TOML
import TestSupport
import Testing

@testable import HAL

let validSX1276 = """
    name = "test"
    radio = "sx1276"

    [spi]
    device = "/dev/spidev0.0"
    speed_hz = 8_000_000

    [gpio]
    reset = { offset = 17, active_low = true }
    dio0 = { offset = 4 }
    """

func parseError(_ text: String) -> TOMLConfigError? {
    do {
        _ = try BoardProfile.parse(text, file: "test.toml")
        return nil
    } catch {
        return error
    }
}

@Suite(.capturingLogs) struct BoardProfileTests {
    @Test func everyShippedProfileIsValid() throws {
        let entries = BoardCatalog(directories: [boardDirectory]).entries()
        let names = Set(entries.map(\.name))
        #expect(
            names.isSuperset(of: [
                "mock", "mock-sx1262", "dragino-lora-gps-hat", "adafruit-rfm95w-bonnet", "waveshare-sx1262-lorawan-hat",
                "rak2287", "seeed-wm1302",
            ]))
        for entry in entries {
            let profile = try entry.profile.get()
            #expect(profile.name == entry.name, "a profile's name matches its file name")
        }
    }

    @Test func parsesAValidProfileWithDefaults() throws {
        let profile = try BoardProfile.parse(validSX1276, file: "test.toml")
        #expect(profile.radio == .sx1276)
        #expect(profile.backend == .sx127x)
        #expect(profile.hal == .linux)
        #expect(profile.spi?.configuration == SPIConfiguration(mode: .mode0, bitsPerWord: 8, speedHz: 8_000_000))
        #expect(
            profile.line(.reset)
                == GPIOLineSpec(chips: BoardProfile.raspberryPiHeaderChips, offset: 17, activeLow: true))
        #expect(profile.line(.dio0)?.activeLow == false)
        #expect(profile.reset.pulseMilliseconds == 1)
        #expect(profile.frontEnd.paBoost)
    }

    @Test func concentratorProfileGivesResetAndPowerLines() throws {
        let profile = try BoardCatalog.loadFile(boardDirectory + "/seeed-wm1302.toml")
        #expect(profile.backend == .semtechUDP)
        #expect(profile.line(.reset)?.offset == 17)
        #expect(profile.line(.powerEnable)?.offset == 18)
        #expect(profile.line(.sx1261Reset)?.offset == 5)
        #expect(profile.spi?.configuration.speedHz == 2_000_000)
    }

    @Test func unknownTopLevelKey() {
        let error = parseError(
            validSX1276.replacingFirst("radio = \"sx1276\"", with: "radio = \"sx1276\"\ncolour = \"red\""))
        #expect(error?.key == "colour")
        #expect(error?.line == 3)
        #expect(error?.message.hasPrefix("unknown key") == true)
        #expect(error?.description.hasPrefix("unknown key") == true)
        #expect(error?.description.hasSuffix("(test.toml:3: colour)") == true)
    }

    @Test func mockFaultsAreOnlyForMockBoards() throws {
        let mock = try BoardProfile.parse(
            String(contentsOfFile: boardDirectory + "/mock.toml", encoding: .utf8)
                + "\n[mock]\nwedge_after_seconds = 2.5\n", file: "mock.toml")
        #expect(mock.mockFaults.wedgeAfterSeconds == 2.5)
        let linux = parseError(validSX1276 + "\n[mock]\nwedge_after_seconds = 1\n")
        #expect(linux?.key == "mock")
        #expect(linux?.message.contains("hal = \"mock\"") == true)
    }

    @Test func unknownKeyInsideALine() {
        let error = parseError(
            validSX1276.replacingFirst("dio0 = { offset = 4 }", with: "dio0 = { offset = 4, pull = \"up\" }"))
        #expect(error?.key == "gpio.dio0.pull")
        #expect(error?.line == 10)
    }

    @Test func unknownLineName() {
        let error = parseError(validSX1276 + "\ndio9 = { offset = 5 }")
        #expect(error?.key == "gpio.dio9")
        #expect(error?.message.contains("unknown line") == true)
    }

    @Test func lineThatTheBackendHasNoUseFor() {
        let error = parseError(validSX1276 + "\nbusy = { offset = 5 }")
        #expect(error?.key == "gpio.busy")
        #expect(error?.message.contains("has no busy line") == true)
    }

    @Test func missingRequiredLine() {
        let text = """
            name = "hat"
            radio = "sx1262"
            [spi]
            device = "/dev/spidev0.0"
            speed_hz = 8000000
            [gpio]
            reset = { offset = 18, active_low = true }
            """
        let error = parseError(text)
        #expect(error?.key == "gpio.busy")
        #expect(error?.message.contains("required") == true)
    }

    @Test func missingResetLine() {
        let error = parseError(validSX1276.replacingFirst("reset = { offset = 17, active_low = true }\n", with: ""))
        #expect(error?.key == "gpio.reset")
    }

    @Test func onePinUsedTwice() {
        let error = parseError(validSX1276 + "\ndio1 = { offset = 4 }")
        #expect(error?.key == "gpio.dio1")
        #expect(error?.message == "offset 4 is already used by gpio.dio0")
        #expect(error?.line == 11)
    }

    @Test func onePinUsedTwiceUnderAnotherNameForTheSameChip() {
        let error = parseError(validSX1276 + "\ndio1 = { offset = 4, chip = \"pinctrl-bcm2711\" }")
        #expect(error?.key == "gpio.dio1")
        #expect(parseError(validSX1276 + "\ndio1 = { offset = 4, chip = \"gpiochip0\" }")?.key == "gpio.dio1")
        #expect(
            parseError(validSX1276 + "\ndio1 = { offset = 4, chip = \"/dev/gpiochip2\" }") == nil,
            "another chip's line 4 is another pin")
    }

    @Test func chipSelectMustBeActiveLow() {
        let error = parseError(validSX1276 + "\nchip_select = { offset = 25 }")
        #expect(error?.key == "gpio.chip_select")
        #expect(error?.message.contains("active low") == true)
        #expect(parseError(validSX1276 + "\nchip_select = { offset = 25, active_low = true }") == nil)
    }

    @Test func pinHeldByTheSPIController() {
        let error = parseError(validSX1276 + "\ndio1 = { offset = 8 }")
        #expect(error?.key == "gpio.dio1")
        #expect(error?.message.contains("SPI0 CE0") == true)
    }

    @Test func impossibleSPISpeed() {
        let error = parseError(validSX1276.replacingFirst("8_000_000", with: "20_000_000"))
        #expect(error?.key == "spi.speed_hz")
        #expect(error?.line == 6)
        #expect(error?.message == "20000000 Hz is above the SX1276's 10 MHz maximum")
        #expect(parseError(validSX1276.replacingFirst("8_000_000", with: "10"))?.key == "spi.speed_hz")
    }

    @Test func badSPIModeAndDevice() {
        #expect(
            parseError(validSX1276.replacingFirst("speed_hz = 8_000_000", with: "speed_hz = 8_000_000\nmode = 4"))?.key
                == "spi.mode")
        #expect(
            parseError(validSX1276.replacingFirst("speed_hz = 8_000_000", with: "speed_hz = 8_000_000\nmode = 3"))?.key
                == "spi.mode")
        #expect(parseError(validSX1276.replacingFirst("/dev/spidev0.0", with: "/dev/ttyS0"))?.key == "spi.device")
        #expect(parseError(validSX1276.replacingFirst("/dev/spidev0.0", with: "/dev/spidev0"))?.key == "spi.device")
        #expect(parseError(validSX1276.replacingFirst("/dev/spidev0.0", with: "/dev/spidev0.x"))?.key == "spi.device")
        #expect(parseError(validSX1276.replacingFirst("/dev/spidev0.0", with: "/dev/spidev3.0")) == nil)
    }

    @Test func missingSPISection() {
        let text = validSX1276.replacingFirst("[spi]\ndevice = \"/dev/spidev0.0\"\nspeed_hz = 8_000_000\n", with: "")
        #expect(parseError(text)?.key == "spi")
    }

    @Test func wrongValueType() {
        let error = parseError(validSX1276.replacingFirst("offset = 4", with: "offset = \"4\""))
        #expect(error?.key == "gpio.dio0.offset")
        #expect(error?.message == "expected an integer, found a string")
    }

    @Test func lineThatIsNotATable() {
        let error = parseError(validSX1276.replacingFirst("dio0 = { offset = 4 }", with: "dio0 = 4"))
        #expect(error?.key == "gpio.dio0")
        #expect(error?.message == "expected a table, found an integer")
    }

    @Test func unknownRadioAndMismatchedBackend() {
        #expect(parseError(validSX1276.replacingFirst("sx1276", with: "sx9999"))?.key == "radio")
        let error = parseError(
            validSX1276.replacingFirst("radio = \"sx1276\"", with: "radio = \"sx1276\"\nbackend = \"sx126x\""))
        #expect(error?.key == "backend")
        #expect(error?.message.contains("cannot drive") == true)
    }

    @Test func mockHALNeedsAMockDeviceAndCannotSimulateConcentrators() {
        #expect(
            parseError(validSX1276.replacingFirst("radio = \"sx1276\"", with: "radio = \"sx1276\"\nhal = \"mock\""))?
                .key == "spi.device")
        let text = """
            name = "c"
            radio = "sx1302"
            hal = "mock"
            [gpio]
            reset = { offset = 17 }
            """
        #expect(parseError(text)?.key == "hal")
    }

    @Test func frontEndOptionsBelongToTheirChip() {
        #expect(
            parseError(validSX1276 + "\n[radio_front_end]\ntcxo_voltage = 1.8")?.key == "radio_front_end.tcxo_voltage")
        let sx1262 = """
            name = "hat"
            radio = "sx1262"
            [spi]
            device = "/dev/spidev0.0"
            speed_hz = 8000000
            [gpio]
            reset = { offset = 18, active_low = true }
            busy = { offset = 20 }
            [radio_front_end]
            tcxo_voltage = 1.9
            """
        #expect(parseError(sx1262)?.key == "radio_front_end.tcxo_voltage")
        let good = try? BoardProfile.parse(sx1262.replacingFirst("1.9", with: "1.8"), file: "t.toml")
        #expect(good?.frontEnd.tcxoVoltage == 1.8)
    }

    @Test func syntaxErrorNamesFileAndLine() {
        let error = parseError("name = \"x\"\nradio = \n")
        #expect(error?.file == "test.toml")
        #expect(error?.line == 2)
    }

    @Test func chipListAcceptsPathsAndTheRaspberryPiAlias() throws {
        let profile = try BoardProfile.parse(
            validSX1276.replacingFirst("[gpio]", with: "[gpio]\nchip = [\"/dev/gpiochip4\", \"raspberry-pi\"]"),
            file: "t.toml")
        #expect(profile.line(.reset)?.chips == ["/dev/gpiochip4"] + BoardProfile.raspberryPiHeaderChips)
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        return String(self[..<range.lowerBound]) + replacement + String(self[range.upperBound...])
    }
}
