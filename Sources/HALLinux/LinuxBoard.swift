import HAL

/// A board on real hardware: spidev for the radio's bus, libgpiod for its lines.
public final class LinuxBoard: BoardHardware {
    public let profile: BoardProfile
    private let gpio: any GPIOController

    public init(profile: BoardProfile, gpio: any GPIOController = LinuxGPIOController()) {
        self.profile = profile
        self.gpio = gpio
    }

    public func openSPI() throws(HardwareError) -> any SPIDevice {
        guard let spi = profile.spi else {
            throw HardwareError(.invalidRequest, "board \(profile.name) has no SPI device: its radio is driven by the packet forwarder")
        }
        let device = try LinuxSPIDevice(path: spi.device, configuration: spi.configuration)
        if let chipSelect = try requestLineIfPresent(.chipSelect, .output(initial: false)) {
            return GPIOChipSelectSPIDevice(device: device, chipSelect: chipSelect)
        }
        return device
    }

    public func requestLine(_ role: LineRole, _ request: GPIOLineRequest) throws(HardwareError) -> any GPIOLine {
        guard let spec = profile.line(role) else {
            throw HardwareError(.invalidRequest, "board \(profile.name) has no \(role.rawValue) line")
        }
        return try gpio.requestLine(spec, role: role.rawValue, consumer: gpioConsumerName, request)
    }
}
