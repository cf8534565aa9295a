import TOML
import TestSupport
import Testing

@testable import HAL

/// The profiles of Raspberry Pi based Helium hotspots, held to Nebra's per-model hardware data
/// (NebraLtd/hm-pyhelper, hm_pyhelper/hardware_definitions.py): SPI bus, key storage bus,
/// concentrator reset, status LED, button.
@Suite struct HeliumProfileTests {
    struct Model: Sendable, CustomTestStringConvertible {
        var name: String
        var spi: String
        var i2c: String
        var reset: UInt32
        var led: UInt32?
        var button: UInt32
        var testDescription: String { name }
    }

    static let models: [Model] = [
        Model(name: "helium-v1", spi: "/dev/spidev0.0", i2c: "/dev/i2c-1", reset: 25, led: 20, button: 7),
        Model(name: "rak-v1", spi: "/dev/spidev0.0", i2c: "/dev/i2c-1", reset: 25, led: 20, button: 7),
        Model(name: "sensecap-m1", spi: "/dev/spidev0.0", i2c: "/dev/i2c-1", reset: 17, led: 22, button: 27),
        Model(name: "panther-x1", spi: "/dev/spidev0.0", i2c: "/dev/i2c-1", reset: 23, led: 22, button: 21),
        Model(name: "finestra", spi: "/dev/spidev0.0", i2c: "/dev/i2c-1", reset: 17, led: 20, button: 16),
        Model(name: "pisces-p100", spi: "/dev/spidev0.0", i2c: "/dev/i2c-0", reset: 23, led: 17, button: 22),
        Model(name: "cotx-x3", spi: "/dev/spidev0.0", i2c: "/dev/i2c-1", reset: 22, led: nil, button: 23),
        Model(name: "nebra-indoor-gen1", spi: "/dev/spidev1.2", i2c: "/dev/i2c-1", reset: 38, led: 25, button: 26),
        Model(name: "nebra-outdoor-gen1", spi: "/dev/spidev1.2", i2c: "/dev/i2c-1", reset: 38, led: 25, button: 24),
    ]

    @Test(arguments: models)
    func theProfileLoadsAndSaysWhatNebrasDataSays(_ model: Model) throws {
        let profile = try BoardCatalog(directories: [boardDirectory]).load(model.name)
        #expect(profile.backend == .semtechUDP && profile.hal == .linux && profile.unsupported == nil)
        #expect(profile.spi?.device == model.spi)
        #expect(profile.secureElement == SecureElementLocation(bus: model.i2c, address: 0x60, slot: 0))
        #expect(profile.secureElement?.uri == "ecc://\(model.i2c.dropFirst(5)):96?slot=0")
        #expect(profile.line(.reset)?.offset == model.reset)
        #expect(profile.line(.statusLED)?.offset == model.led)
        #expect(profile.line(.button)?.offset == model.button)
    }

    @Test func anARMv6ModelIsKeptOnlyToSayItCannotRun() throws {
        let profile = try BoardCatalog(directories: [boardDirectory]).load("nebra-light")
        #expect(profile.unsupported?.contains("ARMv6") == true)
    }

    @Test func aSecureElementIsCheckedLikeEverythingElse() {
        let base = """
            name = "x"
            radio = "sx1302"
            [gpio]
            reset = { offset = 17 }
            """
        for (section, key) in [
            ("bus = \"/dev/spidev0.0\"", "secure_element.bus"),
            ("bus = \"/dev/i2c-1\"\naddress = 200", "secure_element.address"),
            ("bus = \"/dev/i2c-1\"\nslot = 16", "secure_element.slot"),
            ("chip = \"se050\"\nbus = \"/dev/i2c-1\"", "secure_element.chip"),
            ("bus = \"/dev/i2c-1\"\ncolour = 1", "secure_element.colour"),
        ] {
            #expect {
                try BoardProfile.parse(base + "\n[secure_element]\n" + section, file: "x.toml")
            } throws: { error in
                (error as? TOMLConfigError)?.key == key
            }
        }
        #expect(throws: TOMLConfigError.self) { try BoardProfile.parse(base + "\nunsupported = \"\"", file: "x.toml") }
    }

    /// Helium hotspots wire their button to SPI0 CE1 (GPIO7), which `dtoverlay=spi0-1cs` frees;
    /// the device's own chip select and the bus pins stay refused.
    @Test func onlyTheDevicesOwnChipSelectIsHeld() {
        let profile = { (line: String) in
            """
            name = "x"
            radio = "sx1302"
            [spi]
            device = "/dev/spidev0.0"
            speed_hz = 2_000_000
            [gpio]
            chip = "raspberry-pi"
            reset = { offset = 25 }
            \(line)
            """
        }
        #expect(throws: Never.self) { try BoardProfile.parse(profile("button = { offset = 7 }"), file: "x.toml") }
        #expect(throws: TOMLConfigError.self) {
            try BoardProfile.parse(profile("button = { offset = 8 }"), file: "x.toml")
        }
        #expect(throws: TOMLConfigError.self) {
            try BoardProfile.parse(profile("button = { offset = 10 }"), file: "x.toml")
        }
    }
}
