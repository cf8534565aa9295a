import Clocks
import HAL

/// A board on real hardware: spidev for the radio's bus, i2c-dev for its secure element,
/// libgpiod for its lines.
public final class LinuxBoard: BoardHardware {
    public let profile: BoardProfile
    public let gpio: any GPIOController

    public init(profile: BoardProfile, gpio: any GPIOController = LinuxGPIOController()) {
        self.profile = profile
        self.gpio = gpio
    }

    public func openBusDevice(_ spi: BoardProfile.SPI) throws(HardwareError) -> any SPIDevice {
        try LinuxSPIDevice(path: spi.device, configuration: spi.configuration)
    }

    public func openI2C(_ bus: String) throws(HardwareError) -> any I2CBus {
        try LinuxI2CBus(path: bus)
    }
}
