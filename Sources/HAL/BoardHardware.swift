import Synchronization

/// A board opened for use: its profile, its SPI device and its GPIO lines, on whichever
/// backend (Linux or the mock board) the profile names. Radio drivers see only this.
public protocol BoardHardware: AnyObject, Sendable {
    var profile: BoardProfile { get }

    /// Where the board's lines come from.
    var gpio: any GPIOController { get }

    /// Opens the SPI bus device the profile names, with its configuration, and nothing more:
    /// `openSPI()` adds the GPIO chip select.
    func openBusDevice(_ spi: BoardProfile.SPI) throws(HardwareError) -> any SPIDevice

    /// Opens an I2C bus by its node (`/dev/i2c-1`): where a secure element sits.
    func openI2C(_ bus: String) throws(HardwareError) -> any I2CBus
}

/// The GPIO consumer name hotspotd's lines carry in `gpioinfo`.
public let gpioConsumerName = "hotspotd"

extension BoardHardware {
    /// Opens the radio's SPI device with the profile's configuration. When the profile has a
    /// `chip_select` line, the returned device drives it around every message.
    public func openSPI() throws(HardwareError) -> any SPIDevice {
        guard let spi = profile.spi else {
            throw HardwareError(
                .invalidRequest, "board \(profile.name) has no SPI device: its radio is driven by the packet forwarder")
        }
        let device = try openBusDevice(spi)
        if let chipSelect = try requestLineIfPresent(.chipSelect, .output(initial: false)) {
            return GPIOChipSelectSPIDevice(device: device, chipSelect: chipSelect)
        }
        return device
    }

    /// Requests the line the profile gives for `role`.
    public func requestLine(_ role: LineRole, _ request: GPIOLineRequest) throws(HardwareError) -> any GPIOLine {
        guard let spec = profile.line(role) else {
            throw HardwareError(.invalidRequest, "board \(profile.name) has no \(role.rawValue) line")
        }
        return try gpio.requestLine(spec, role: role.rawValue, consumer: gpioConsumerName, request)
    }

    /// Requests the line for `role`, or nil when the profile has none.
    public func requestLineIfPresent(_ role: LineRole, _ request: GPIOLineRequest) throws(HardwareError) -> (
        any GPIOLine
    )? {
        guard profile.line(role) != nil else { return nil }
        return try requestLine(role, request)
    }
}

/// Wraps an SPI device whose chip select is an ordinary GPIO line (the Dragino HAT's GPIO25,
/// the Waveshare SX1262 HAT's GPIO21): the line is made active for the whole of each message.
public final class GPIOChipSelectSPIDevice: SPIDevice {
    private let device: any SPIDevice
    private let chipSelect: any GPIOLine
    /// One message at a time: chip select must not be released under another caller's message.
    private let bus = Mutex(())

    /// `chipSelect` must be an output, inactive; its polarity (NSS is active-low) comes from the profile.
    public init(device: any SPIDevice, chipSelect: any GPIOLine) {
        self.device = device
        self.chipSelect = chipSelect
    }

    public var path: String { device.path + " (chip select on \(chipSelect.name))" }
    public var configuration: SPIConfiguration { device.configuration }

    public func configure(_ configuration: SPIConfiguration) throws(HardwareError) {
        try device.configure(configuration)
    }

    public func transfer(_ segments: [SPISegment]) throws(HardwareError) -> [[UInt8]] {
        try bus.withLock { _ throws(HardwareError) in
            try chipSelect.setValue(true)
            let result: Result<[[UInt8]], HardwareError>
            do throws(HardwareError) {
                result = .success(try device.transfer(segments))
            } catch {
                result = .failure(error)
            }
            do throws(HardwareError) {
                try chipSelect.setValue(false)
            } catch {
                if case .success = result { throw error }
            }
            return try result.get()
        }
    }
}
