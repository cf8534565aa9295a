/// SPI clock polarity and phase, modes 0 to 3 as spidev numbers them.
public enum SPIMode: UInt8, Sendable, CaseIterable {
    case mode0 = 0
    case mode1 = 1
    case mode2 = 2
    case mode3 = 3
}

/// How a device is clocked: mode, bits per word and maximum clock speed.
public struct SPIConfiguration: Hashable, Sendable {
    public var mode: SPIMode
    public var bitsPerWord: UInt8
    public var speedHz: UInt32

    public init(mode: SPIMode = .mode0, bitsPerWord: UInt8 = 8, speedHz: UInt32) {
        self.mode = mode
        self.bitsPerWord = bitsPerWord
        self.speedHz = speedHz
    }
}

/// One segment of a full-duplex SPI message: `write` is clocked out, and as many bytes are
/// clocked in. A segment longer than `write` (set by `length`) sends zeros after it.
public struct SPISegment: Hashable, Sendable {
    public private(set) var write: [UInt8]
    /// At least `write.count`.
    public private(set) var length: Int
    /// Microseconds to wait after the segment before the next one (chip select still held).
    public var delayMicroseconds: UInt16

    public init(write: [UInt8], length: Int? = nil, delayMicroseconds: UInt16 = 0) {
        self.write = write
        self.length = max(length ?? write.count, write.count)
        self.delayMicroseconds = delayMicroseconds
    }

    /// A segment that only reads: `count` zero bytes are clocked out.
    public static func read(_ count: Int) -> SPISegment {
        SPISegment(write: [], length: count)
    }
}

/// A device on an SPI bus.
///
/// `transfer` runs its segments as one message: chip select is asserted before the first and
/// released after the last, so a register address and its data can be separate segments.
/// Transfers are short and synchronous (a few microseconds at radio speeds); callers that need
/// to wait for the radio do so on GPIO lines, never in here.
public protocol SPIDevice: AnyObject, Sendable {
    /// A name for messages, such as "/dev/spidev0.0".
    var path: String { get }
    var configuration: SPIConfiguration { get }

    /// Applies a new mode, word size and speed.
    func configure(_ configuration: SPIConfiguration) throws(HardwareError)

    /// Runs the segments as one message and returns, for each segment, the bytes clocked in.
    func transfer(_ segments: [SPISegment]) throws(HardwareError) -> [[UInt8]]
}

extension SPIDevice {
    /// Writes `header`, then clocks in `count` bytes, chip select held throughout.
    public func write(_ header: [UInt8], thenRead count: Int) throws(HardwareError) -> [UInt8] {
        try transfer([SPISegment(write: header), .read(count)])[1]
    }

    /// Writes `bytes` as one segment and discards what comes back.
    public func write(_ bytes: [UInt8]) throws(HardwareError) {
        _ = try transfer([SPISegment(write: bytes)])
    }

    /// A single full-duplex exchange.
    public func exchange(_ bytes: [UInt8]) throws(HardwareError) -> [UInt8] {
        try transfer([SPISegment(write: bytes)])[0]
    }
}
