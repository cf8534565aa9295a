import Clocks
import FoundationEssentials
import HAL

/// The mock board: a simulated radio on a virtual SPI bus and virtual GPIO lines, wired as the
/// profile says, listening to and transmitting into a simulated `Air`. Radio drivers run on it
/// unchanged; tests and the demo reach the simulated chip through `sx1276` / `sx1262`.
public final class MockBoard: BoardHardware {
    public let profile: BoardProfile
    /// The board's virtual GPIO chip, for tests to drive and observe lines.
    public let virtualGPIO: VirtualGPIOChip
    public let air: Air
    /// The simulated chip, by family; exactly one is set.
    public let sx1276: SimulatedSX1276?
    public let sx1262: SimulatedSX1262?
    /// The simulated ATECC608 on the board's virtual I2C bus: where the profile's
    /// `[secure_element]` says, or on /dev/i2c-1 at 0x60, with a key drawn from the profile's name.
    public let secureElement: SimulatedECC608
    public let i2c: VirtualI2CBus
    private let peripheral: any SPIPeripheral

    /// `disconnected` lists lines the profile names but the simulated board does not wire to
    /// the chip, to test what a wrong profile or a broken trace looks like.
    public init(profile: BoardProfile, air: Air, disconnected: Set<LineRole> = []) throws(HardwareError) {
        self.profile = profile
        self.air = air
        let gpio = VirtualGPIOChip(label: profile.line(.reset)?.chips.first ?? "mock")
        virtualGPIO = gpio
        let location = profile.secureElement ?? SecureElementLocation(bus: "/dev/i2c-1")
        i2c = VirtualI2CBus(path: location.bus)
        secureElement = SimulatedECC608(seed: profile.name)
        i2c.attach(secureElement, at: location.address)
        func pin(_ role: LineRole) -> UInt32? {
            disconnected.contains(role) ? nil : profile.line(role)?.offset
        }
        switch profile.radio.family {
        case .sx127x:
            let chip = SimulatedSX1276(
                name: "\(profile.name) \(profile.radio.rawValue)", gpio: gpio,
                pins: .init(reset: pin(.reset), dio0: pin(.dio0), dio1: pin(.dio1)),
                air: air
            )
            sx1276 = chip
            sx1262 = nil
            peripheral = chip
        case .sx126x:
            let chip = SimulatedSX1262(
                name: "\(profile.name) \(profile.radio.rawValue)", gpio: gpio,
                pins: .init(reset: pin(.reset), busy: pin(.busy), dio1: pin(.dio1)),
                air: air
            )
            sx1276 = nil
            sx1262 = chip
            peripheral = chip
        case .concentrator:
            throw HardwareError(
                .invalidRequest, "the mock board simulates SX127x and SX126x radios, not a \(profile.radio.displayName)"
            )
        }
        if let chipSelect = profile.line(.chipSelect) {
            // NSS idles high through the board's pull-up.
            gpio.setPull(chipSelect.offset, high: true)
        }
        // Real time, whatever the air's time scale: the faults are for the daemon's supervision.
        for (delay, survivesReset) in [
            (profile.mockFaults.wedgeAfterSeconds, true), (profile.mockFaults.hangAfterSeconds, false),
        ] {
            guard let seconds = delay else { continue }
            let (sx1276, sx1262) = (sx1276, sx1262)
            Task.detached {
                try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                sx1276?.hang(survivesReset: survivesReset)
                sx1262?.hang(survivesReset: survivesReset)
            }
        }
    }

    public var gpio: any GPIOController { virtualGPIO }

    public func openI2C(_ bus: String) throws(HardwareError) -> any I2CBus {
        guard bus == i2c.path else {
            throw HardwareError(.notFound, "\(bus) does not exist: the mock board's I2C bus is \(i2c.path)")
        }
        return i2c
    }

    public func openBusDevice(_ spi: BoardProfile.SPI) throws(HardwareError) -> any SPIDevice {
        let chipSelect = profile.line(.chipSelect).map { (chip: virtualGPIO, offset: $0.offset) }
        return MockSPIDevice(
            path: spi.device, configuration: spi.configuration, peripheral: peripheral, chipSelectLine: chipSelect)
    }
}
