import Clocks
import Cryptography
import HAL
import Synchronization

/// A Microchip ATECC608 at the protocol level, as a hotspot's identity chip: provisioned
/// (configuration and data zones locked) with a P-256 key in slot 0 whose point is compact.
///
/// It sleeps until woken; a wake pulse wakes it after tWHI with the `04 11 33 43` status; its
/// watchdog puts it back to sleep 1.3 s after the wake; it acknowledges nothing while asleep or
/// executing; commands carry a CRC-16 it checks; responses carry one. It answers Info
/// (revision), Random, Read (configuration zone), GenKey (public-key mode), Nonce (pass-through)
/// and Sign (external), and refuses the rest with a parse error. Faults can be injected.
public final class SimulatedECC608: VirtualI2CTarget {
    /// Faults to play out; each count is used up one event at a time.
    public struct Faults: Sendable {
        /// The next responses go out with a corrupted CRC.
        public var corruptResponses = 0
        /// The next commands are answered with status 0xFF, as if their CRC were wrong.
        public var refuseCommandsAsGarbled = 0
        /// The watchdog fires during the next commands: the chip falls asleep mid-command.
        public var sleepDuringCommands = 0
        /// The next Sign commands end in an ECC fault (0x05), which a retry clears.
        public var eccFaults = 0
        /// The chip never acknowledges anything, woken or not: absent, or at another address.
        public var unresponsive = false
        public init() {}
    }

    public enum State: Sendable, Equatable {
        case asleep, idle, awake
    }

    /// Timing, in real time. The datasheet's tWHI and watchdog; execution times near Helium's
    /// typical figures, scaled by `executionScale` (0 in tests that count only behaviour).
    public struct Timing: Sendable {
        public var wakeDelayNanoseconds: UInt64 = 1_500_000
        public var watchdogNanoseconds: UInt64 = 1_300_000_000
        public var executionScale: Double = 1
        public init() {}
    }

    private struct Chip {
        var state = State.asleep
        /// When a wake pulse was seen (the chip answers tWHI later).
        var wokenAt: UInt64 = 0
        var busyUntil: UInt64 = 0
        var output: [UInt8] = []
        var tempKey: [UInt8]?
        var faults = Faults()
        var commands: [UInt8] = []
    }

    public let key: P256PrivateKey
    public let configuration: [UInt8]
    public let revision: [UInt8]
    public let timing: Timing
    private let chip = Mutex(Chip())

    /// `key` is slot 0's; `revision` what Info answers (`00 00 60 02`, an ATECC608A);
    /// `locked` whether the configuration and data zones are locked.
    public init(
        key: P256PrivateKey, revision: [UInt8] = [0x00, 0x00, 0x60, 0x02], locked: Bool = true,
        timing: Timing = Timing()
    ) {
        self.key = key
        self.revision = revision
        self.timing = timing
        var config = [UInt8](repeating: 0, count: 128)
        config.replaceSubrange(0..<4, with: [0x01, 0x23, 0x9A, 0x4C])
        config.replaceSubrange(4..<8, with: revision)
        config.replaceSubrange(8..<13, with: [0x5D, 0x21, 0x70, 0x81, 0xEE])
        config[14] = 0x01  // I2C_Enable
        config[16] = 0xC0  // I2C_Address: 0x60 as a write address
        // Slot 0: a private key that signs external messages, never read out (SlotConfig 0x2083:
        // IsSecret, external signatures); KeyConfig 0x0033: Private, PubInfo, P-256, Lockable.
        config.replaceSubrange(20..<22, with: [0x83, 0x20])
        config.replaceSubrange(96..<98, with: [0x33, 0x00])
        // Other slots: data (KeyType 7).
        for slot in 1..<16 {
            config.replaceSubrange((20 + 2 * slot)..<(22 + 2 * slot), with: [0x00, 0x00])
            config.replaceSubrange((96 + 2 * slot)..<(98 + 2 * slot), with: [0x1C, 0x00])
        }
        config[86] = locked ? 0x00 : 0x55  // LockValue
        config[87] = locked ? 0x00 : 0x55  // LockConfig
        config[88] = 0xFF
        config[89] = 0xFF
        configuration = config
    }

    /// A chip whose slot 0 key is drawn from `seed`, always the same for the same seed.
    public convenience init(seed: String, revision: [UInt8] = [0x00, 0x00, 0x60, 0x02], timing: Timing = Timing()) {
        self.init(
            key: P256PrivateKey.compact(seed: Array("hotspotd simulated ECC608 \(seed)".utf8)), revision: revision,
            timing: timing)
    }

    public func injectFaults(_ change: (inout Faults) -> Void) {
        chip.withLock { change(&$0.faults) }
    }

    public var state: State {
        chip.withLock { chip in
            Self.applyWatchdog(&chip, now: monotonicNanoseconds(), timing: timing)
            return chip.state
        }
    }

    /// The opcodes received with a good CRC, in order.
    public var commandsReceived: [UInt8] { chip.withLock { $0.commands } }

    // MARK: VirtualI2CTarget

    public func wakePulse() {
        chip.withLock { chip in
            guard !chip.faults.unresponsive else { return }
            let now = monotonicNanoseconds()
            Self.applyWatchdog(&chip, now: now, timing: timing)
            // An awake chip ignores a wake in I2C mode.
            guard chip.state != .awake else { return }
            let wasIdle = chip.state == .idle
            chip.state = .awake
            chip.wokenAt = now
            chip.busyUntil = now + timing.wakeDelayNanoseconds
            chip.output = Self.status(0x11)
            if !wasIdle { chip.tempKey = nil }
        }
    }

    public func receive(_ bytes: [UInt8]) throws(HardwareError) {
        try chip.withLock { chip throws(HardwareError) in
            try acknowledge(&chip)
            guard let word = bytes.first else { return }
            switch word {
            case 0x00:  // reset the I/O buffer
                chip.output = []
            case 0x01:
                chip.state = .asleep
                chip.tempKey = nil
                chip.output = []
            case 0x02:
                chip.state = .idle
                chip.output = []
            case 0x03:
                execute(&chip, packet: Array(bytes.dropFirst()))
            default:
                chip.output = Self.status(0x03)
            }
        }
    }

    public func send(_ count: Int) throws(HardwareError) -> [UInt8] {
        try chip.withLock { chip throws(HardwareError) in
            try acknowledge(&chip)
            var out = Array(chip.output.prefix(count))
            chip.output.removeFirst(out.count)
            out += [UInt8](repeating: 0xFF, count: count - out.count)
            return out
        }
    }

    // MARK: The chip

    private func acknowledge(_ chip: inout Chip) throws(HardwareError) {
        let now = monotonicNanoseconds()
        Self.applyWatchdog(&chip, now: now, timing: timing)
        guard !chip.faults.unresponsive, chip.state == .awake, now >= chip.busyUntil else {
            throw HardwareError(.nack, "the simulated ECC608 did not acknowledge (asleep or busy)")
        }
    }

    private static func applyWatchdog(_ chip: inout Chip, now: UInt64, timing: Timing) {
        if chip.state == .awake && now >= chip.wokenAt + timing.watchdogNanoseconds {
            chip.state = .asleep
            chip.tempKey = nil
            chip.output = []
        }
    }

    private func execute(_ chip: inout Chip, packet: [UInt8]) {
        guard packet.count >= 7, Int(packet[0]) == packet.count,
            Self.crc(packet.dropLast(2)) == Array(packet.suffix(2))
        else {
            chip.output = Self.status(0xFF)
            return
        }
        if chip.faults.refuseCommandsAsGarbled > 0 {
            chip.faults.refuseCommandsAsGarbled -= 1
            chip.output = Self.status(0xFF)
            return
        }
        let opcode = packet[1]
        let param1 = packet[2]
        let param2 = UInt16(packet[3]) | UInt16(packet[4]) << 8
        let data = Array(packet[5..<(packet.count - 2)])
        chip.commands.append(opcode)
        let (result, typicalMilliseconds) = run(&chip, opcode: opcode, param1: param1, param2: param2, data: data)
        let now = monotonicNanoseconds()
        chip.busyUntil = now + UInt64(typicalMilliseconds * timing.executionScale * 1_000_000)
        if chip.faults.sleepDuringCommands > 0 {
            chip.faults.sleepDuringCommands -= 1
            chip.state = .asleep
            chip.tempKey = nil
            chip.output = []
            return
        }
        var response = result
        if chip.faults.corruptResponses > 0 {
            chip.faults.corruptResponses -= 1
            response[response.count - 1] ^= 0x5A
        }
        chip.output = response
    }

    /// The response packet, and the typical execution time in milliseconds.
    private func run(_ chip: inout Chip, opcode: UInt8, param1: UInt8, param2: UInt16, data: [UInt8])
        -> ([UInt8], Double)
    {
        switch opcode {
        case 0x30 where param1 == 0x00:
            return (Self.packet(revision), 0.5)
        case 0x1B where data.isEmpty:
            let locked = configuration[87] == 0x00
            // An unlocked chip answers a fixed test pattern instead of random bytes.
            let bytes =
                locked
                ? secureRandomBytes(32)
                : [0xFF, 0xFF, 0x00, 0x00] + [UInt8](repeating: 0xFF, count: 4)
                    + [UInt8](repeating: 0x00, count: 24)
            return (Self.packet(bytes), 15)
        case 0x02 where param1 & 0x03 == 0x00:
            let block = Int(param2 >> 3) & 0x03
            let word = Int(param2 & 0x07)
            if param1 & 0x80 != 0 {
                return (Self.packet(Array(configuration[(block * 32)..<(block * 32 + 32)])), 0.8)
            }
            let start = block * 32 + word * 4
            return (Self.packet(Array(configuration[start..<(start + 4)])), 0.8)
        case 0x40 where param1 == 0x00 && data.isEmpty:
            guard param2 == 0 else { return (Self.status(0x0F), 1) }
            return (Self.packet(key.publicKey.x + key.publicKey.y), 59)
        case 0x16 where param1 == 0x03 && data.count == 32:
            chip.tempKey = data
            return (Self.status(0x00), 7)
        case 0x41 where param1 == 0x80:
            guard param2 == 0 else { return (Self.status(0x0F), 1) }
            guard let digest = chip.tempKey else { return (Self.status(0x0F), 1) }
            if chip.faults.eccFaults > 0 {
                chip.faults.eccFaults -= 1
                return (Self.status(0x05), 62)
            }
            chip.tempKey = nil
            guard let der = try? key.signature(forDigest: digest), let raw = ECDSASignature.raw(der: der) else {
                return (Self.status(0x05), 62)
            }
            return (Self.packet(raw), 62)
        default:
            return (Self.status(0x03), 0.5)
        }
    }

    private static func packet(_ data: [UInt8]) -> [UInt8] {
        let body = [UInt8(data.count + 3)] + data
        return body + crc(body)
    }

    private static func status(_ code: UInt8) -> [UInt8] {
        packet([code])
    }

    /// CRC-16 as the datasheet defines it (polynomial 0x8005, bits taken LSB first, initial 0),
    /// written here in its reflected form: the register shifts right with polynomial 0xA001,
    /// and the result is bit-reversed.
    static func crc(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var register: UInt16 = 0
        for byte in bytes {
            register ^= UInt16(byte)
            for _ in 0..<8 {
                register = register & 1 != 0 ? (register >> 1) ^ 0xA001 : register >> 1
            }
        }
        let value = register.bitReversed
        return [UInt8(value & 0xFF), UInt8(value >> 8)]
    }
}

extension UInt16 {
    fileprivate var bitReversed: UInt16 {
        var value = self
        var result: UInt16 = 0
        for _ in 0..<16 {
            result = (result << 1) | (value & 1)
            value >>= 1
        }
        return result
    }
}
