import Clocks
import HAL
import LoRaPHY

@testable import HALMock

let mockSX1276Profile = try! BoardProfile.parse(
    """
    name = "mock"
    radio = "sx1276"
    hal = "mock"
    [spi]
    device = "mock:spidev0.0"
    speed_hz = 8000000
    [gpio]
    reset = { offset = 17, active_low = true }
    dio0 = { offset = 4 }
    dio1 = { offset = 23 }
    """, file: "mock.toml")

let mockSX1262Profile = try! BoardProfile.parse(
    """
    name = "mock-sx1262"
    radio = "sx1262"
    hal = "mock"
    [spi]
    device = "mock:spidev0.0"
    speed_hz = 8000000
    [gpio]
    reset = { offset = 18, active_low = true }
    busy = { offset = 20 }
    dio1 = { offset = 16 }
    chip_select = { offset = 21, active_low = true }
    """, file: "mock-sx1262.toml")

/// Register access to a simulated SX1276 the way a driver does it, over the board's SPI device.
struct SX1276Bus {
    let spi: any SPIDevice

    func read(_ address: UInt8) throws -> UInt8 {
        try spi.write([address & 0x7F], thenRead: 1)[0]
    }

    func read(_ address: UInt8, count: Int) throws -> [UInt8] {
        try spi.write([address & 0x7F], thenRead: count)
    }

    func write(_ address: UInt8, _ values: UInt8...) throws {
        try spi.write([address | 0x80] + values)
    }

    /// LoRa mode, standby, on `frequencyHz` at SF and 125 kHz, CR 4/5, CRC on, public sync word.
    func configure(frequencyHz: UInt32, spreadingFactor: Int = 7) throws {
        try write(0x01, 0x80)  // SLEEP + LoRa
        try write(0x01, 0x81)  // STDBY
        let frf = (UInt64(frequencyHz) << 19) / 32_000_000
        try write(0x06, UInt8(frf >> 16), UInt8((frf >> 8) & 0xFF), UInt8(frf & 0xFF))
        try write(0x1D, 0x72)  // 125 kHz, 4/5, explicit header
        try write(0x1E, UInt8(spreadingFactor << 4) | 0x04)  // SF, CRC on
        try write(0x39, 0x34)
        try write(0x0E, 0x00)
        try write(0x0F, 0x00)
    }
}

/// Command access to a simulated SX1262, waiting for BUSY as a driver must.
struct SX1262Bus {
    let spi: any SPIDevice
    let busy: any GPIOLine

    func waitReady() throws {
        for _ in 0..<1000 where try busy.value() {
            sleepMilliseconds(1)
        }
    }

    @discardableResult
    func command(_ opcode: UInt8, _ arguments: [UInt8] = [], reading count: Int = 0) throws -> [UInt8] {
        try waitReady()
        return try spi.exchange([opcode] + arguments + [UInt8](repeating: 0, count: count))
    }

    /// LoRa, standby, `frequencyHz`, SF7 125 kHz 4/5, explicit header, CRC on, public sync word.
    func configure(frequencyHz: UInt32, spreadingFactor: UInt8 = 7) throws {
        try command(0x80, [0x00])
        try command(0x8A, [0x01])
        let rf = UInt32((UInt64(frequencyHz) << 25) / 32_000_000)
        try command(0x86, [UInt8(rf >> 24), UInt8((rf >> 16) & 0xFF), UInt8((rf >> 8) & 0xFF), UInt8(rf & 0xFF)])
        try command(0x8B, [spreadingFactor, 0x04, 0x01, 0x00])
        try command(0x8C, [0x00, 0x08, 0x00, 0xFF, 0x01, 0x00])
        try command(0x8F, [0x00, 0x00])
        try command(0x0D, [0x07, 0x40, 0x34, 0x44])
        try command(0x08, [0x02, 0x03, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00])  // TxDone|RxDone|Timeout on DIO1
    }
}

func uplink(
    _ payload: [UInt8], frequencyHz: UInt32 = 868_100_000, sf: SpreadingFactor = .sf7, rssi: Double = -80,
    snr: Double = 7.5
) -> AirFrame {
    AirFrame(
        payload: payload, frequencyHz: frequencyHz, modulation: LoRaModulation(spreadingFactor: sf, bandwidth: .khz125),
        rssiDBm: rssi, snrDB: snr, source: "sensor")
}
