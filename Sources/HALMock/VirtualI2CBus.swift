import HAL
import Synchronization

/// A device on the mock board's virtual I2C bus, seen from the bus: it acknowledges or not,
/// takes written bytes, gives read bytes. A wake pulse (SDA held low, as a write to the
/// general-call address makes it) reaches every device.
public protocol VirtualI2CTarget: AnyObject, Sendable {
    func wakePulse()
    func receive(_ bytes: [UInt8]) throws(HardwareError)
    func send(_ count: Int) throws(HardwareError) -> [UInt8]
}

/// The mock board's I2C bus: targets by 7-bit address; a transaction to an address nobody
/// holds is not acknowledged, as on a real bus.
public final class VirtualI2CBus: I2CBus {
    public let path: String
    private let targets = Mutex<[UInt8: any VirtualI2CTarget]>([:])
    private let transactionCount = Atomic(0)

    public init(path: String) {
        self.path = path
    }

    public func attach(_ target: any VirtualI2CTarget, at address: UInt8) {
        targets.withLock { $0[address] = target }
    }

    /// Transactions run so far, acknowledged or not.
    public var transactions: Int { transactionCount.load(ordering: .relaxed) }

    public func transfer(address: UInt8, _ messages: [I2CMessage]) throws(HardwareError) -> [[UInt8]] {
        transactionCount.add(1, ordering: .relaxed)
        let all = targets.withLock { Array($0.values) }
        if address == 0x00 {
            // The general-call address holds SDA low for its eight bits: a wake pulse.
            for target in all { target.wakePulse() }
            throw HardwareError(.nack, "no device acknowledged the general call on \(path)")
        }
        guard let target = targets.withLock({ $0[address] }) else {
            throw HardwareError(.nack, "no device acknowledged on \(path) at 0x\(String(address, radix: 16))")
        }
        var reads: [[UInt8]] = []
        for message in messages {
            switch message {
            case .write(let bytes): try target.receive(bytes)
            case .read(let count): reads.append(try target.send(count))
            }
        }
        return reads
    }
}
