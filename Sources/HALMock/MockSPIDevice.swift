import Clocks
import HAL
import Synchronization

/// A chip on the mock SPI bus: it sees each message as the bytes clocked out while chip
/// select was held, and answers with as many bytes.
public protocol SPIPeripheral: AnyObject, Sendable {
    func spiTransaction(_ mosi: [UInt8]) -> [UInt8]
}

/// An SPI device on the mock board. With `chipSelectLine` set, the chip's NSS is that virtual
/// GPIO line (active low) instead of the bus's own chip select, as on boards whose NSS is an
/// ordinary GPIO: a message sent while the line is high never reaches the chip.
public final class MockSPIDevice: SPIDevice {
    public let path: String
    private let peripheral: any SPIPeripheral
    private let chipSelectLine: (chip: VirtualGPIOChip, offset: UInt32)?
    private let state: Mutex<(configuration: SPIConfiguration, log: [[UInt8]], count: Int)>
    /// Messages kept in `log`; older ones are dropped.
    static let logLimit = 256

    public init(
        path: String, configuration: SPIConfiguration, peripheral: any SPIPeripheral,
        chipSelectLine: (chip: VirtualGPIOChip, offset: UInt32)? = nil
    ) {
        self.path = path
        self.peripheral = peripheral
        self.chipSelectLine = chipSelectLine
        state = Mutex((configuration, [], 0))
    }

    public var configuration: SPIConfiguration {
        state.withLock { $0.configuration }
    }

    public func configure(_ configuration: SPIConfiguration) throws(HardwareError) {
        guard configuration.speedHz > 0, configuration.bitsPerWord == 8 else {
            throw HardwareError(.invalidRequest, "\(path): the mock bus takes 8-bit words at a non-zero speed")
        }
        state.withLock { $0.configuration = configuration }
    }

    /// The last messages clocked out on this device, oldest first.
    public var log: [[UInt8]] {
        state.withLock { $0.log }
    }

    /// How many messages were sent since the device was made.
    public var messageCount: Int {
        state.withLock { $0.count }
    }

    public func transfer(_ segments: [SPISegment]) throws(HardwareError) -> [[UInt8]] {
        var mosi: [UInt8] = []
        for segment in segments {
            mosi.append(contentsOf: segment.write)
            mosi.append(contentsOf: repeatElement(0, count: segment.length - segment.write.count))
        }
        state.withLock { state in
            state.log.append(mosi)
            state.count += 1
            if state.log.count > Self.logLimit { state.log.removeFirst() }
        }
        let selected = chipSelectLine.map { !$0.chip.level($0.offset) } ?? true
        // An unselected chip leaves MISO floating; the mock reads that as zeros.
        var miso = selected ? peripheral.spiTransaction(mosi) : [UInt8](repeating: 0, count: mosi.count)
        if miso.count < mosi.count { miso.append(contentsOf: repeatElement(0, count: mosi.count - miso.count)) }
        var replies: [[UInt8]] = []
        var offset = 0
        for segment in segments {
            replies.append(Array(miso[offset..<offset + segment.length]))
            offset += segment.length
        }
        return replies
    }
}
