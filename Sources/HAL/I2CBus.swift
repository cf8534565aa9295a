/// One message of an I2C transaction: bytes written to the target, or a number of bytes read
/// from it.
public enum I2CMessage: Hashable, Sendable {
    case write([UInt8])
    case read(Int)
}

/// An I2C bus (`/dev/i2c-1` on a Raspberry Pi's header). Targets are 7-bit addresses.
///
/// `transfer` runs its messages as one combined transaction: a start, each message with a
/// repeated start before the next, and one stop at the end. Transfers are synchronous and
/// short (a few hundred microseconds at 100 kHz); the bus's timeout bounds a stuck one.
public protocol I2CBus: AnyObject, Sendable {
    /// A name for messages, such as "/dev/i2c-1".
    var path: String { get }

    /// Runs the messages against `address`; returns the bytes of each `.read`, in order.
    /// A target that does not acknowledge throws `.nack`, a bus held by another master
    /// `.busBusy`, a transaction that does not finish `.timeout`.
    func transfer(address: UInt8, _ messages: [I2CMessage]) throws(HardwareError) -> [[UInt8]]

    /// Runs `body` while no other process uses the bus through this kind of handle (an advisory
    /// lock on the node), for exchanges that must not be interleaved: a secure element's
    /// session. The default runs `body` at once.
    func exclusively<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T
}

extension I2CBus {
    public func exclusively<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try body()
    }
}

/// One target on an I2C bus.
public struct I2CDevice: Sendable {
    public let bus: any I2CBus
    public let address: UInt8

    public init(bus: any I2CBus, address: UInt8) {
        self.bus = bus
        self.address = address
    }

    /// "/dev/i2c-1 at 0x60", for messages.
    public var name: String { "\(bus.path) at 0x\(String(address, radix: 16, uppercase: false))" }

    public func write(_ bytes: [UInt8]) throws(HardwareError) {
        _ = try bus.transfer(address: address, [.write(bytes)])
    }

    public func read(_ count: Int) throws(HardwareError) -> [UInt8] {
        try bus.transfer(address: address, [.read(count)]).first ?? []
    }

    /// Writes `bytes`, then reads `count` after a repeated start, in one transaction.
    public func write(_ bytes: [UInt8], thenRead count: Int) throws(HardwareError) -> [UInt8] {
        try bus.transfer(address: address, [.write(bytes), .read(count)]).first ?? []
    }
}
