import Clocks
import Cryptography
import HAL
import Synchronization

/// Why the secure element could not do what was asked.
public struct ECC608Error: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// No chip acknowledged on the bus, even after waking it.
        case notResponding
        /// Responses kept arriving with a wrong CRC or a wrong length.
        case communication
        /// The chip answered a command with an error status.
        case status(ECC608Status)
        /// The chip is not an ATECC608 (Info's revision says so).
        case wrongRevision([UInt8])
        /// The chip's key is not one hotspotd can use (no P-256 key, not compact, not locked).
        case unusableKey
        /// The bus itself failed (permission, missing node).
        case bus(HardwareError.Kind)
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// How long the driver waits, per the datasheet: tWHI after a wake, polling steps while the
/// chip executes, and how many times it tries again.
public struct ECC608Timing: Sendable {
    /// After the wake pulse, before the chip is spoken to (tWHI: 1.5 ms).
    public var wakeDelay: Duration = .microseconds(1500)
    /// The first poll for a response after a command is sent.
    public var firstPoll: Duration = .milliseconds(1)
    /// Between later polls.
    public var pollInterval: Duration = .milliseconds(2)
    /// Attempts at a command sequence (each from a fresh wake) before giving up.
    public var attempts = 4

    public init() {}
}

/// A Microchip ATECC608 on an I2C bus, driven by its own protocol: wake, command packets with
/// CRC-16, polling while the chip executes, then sleep. Only commands that read are sent:
/// Info, Random, Read (configuration zone), GenKey in public-key mode, and Nonce + Sign with
/// an external digest. The driver never writes the configuration, never locks, and never
/// creates a key; it uses the key the manufacturer provisioned.
///
/// Every operation is one session: wake, the commands, sleep. A chip's watchdog puts it to
/// sleep 1.3 s after a wake whatever it is doing, so sessions are short, and a session the
/// watchdog cut (a NACK mid-command, status 0xEE) starts again from a fresh wake.
public final class ECC608: Sendable {
    public let device: I2CDevice
    public let timing: ECC608Timing
    /// One session at a time: a second caller must not wake or sleep the chip under the first.
    private let session = Mutex(())

    /// The default bus address of an ATECC608 (0xC0 as an 8-bit write address).
    public static let defaultAddress: UInt8 = 0x60

    public init(bus: any I2CBus, address: UInt8 = defaultAddress, timing: ECC608Timing = ECC608Timing()) {
        device = I2CDevice(bus: bus, address: address)
        self.timing = timing
    }

    /// Info's revision: `00 00 60 02` for an ATECC608A, `00 00 60 03` (or later) for a 608B.
    public func revision() throws(ECC608Error) -> [UInt8] {
        try run { () throws(ECC608Error) in try execute(.revision) }
    }

    /// 32 random bytes from the chip's generator. (An unlocked chip answers a fixed pattern.)
    public func random() throws(ECC608Error) -> [UInt8] {
        try run { () throws(ECC608Error) in try execute(.random) }
    }

    /// The 128-byte configuration zone, read in four 32-byte blocks.
    public func configuration() throws(ECC608Error) -> ECC608Configuration {
        let bytes = try run { () throws(ECC608Error) in
            var bytes: [UInt8] = []
            for block in 0..<4 {
                bytes += try execute(.readConfiguration(block: UInt8(block)))
            }
            return bytes
        }
        return ECC608Configuration(bytes: bytes)
    }

    /// The public key of the private key in `slot` (GenKey, public-key mode).
    public func publicKey(slot: UInt16) throws(ECC608Error) -> P256PublicKey {
        let coordinates = try run { () throws(ECC608Error) in try execute(.publicKey(slot: slot)) }
        do {
            return try P256PublicKey(coordinates: coordinates)
        } catch {
            throw ECC608Error(.unusableKey, "slot \(slot) of the ECC608 on \(device.name) gave \(error.message)")
        }
    }

    /// The raw ECDSA signature (R ‖ S, 64 bytes) of a 32-byte digest with the key in `slot`:
    /// Nonce in pass-through mode loads the digest into TempKey, Sign uses it, in one session
    /// (sleep would clear TempKey).
    public func sign(digest: [UInt8], slot: UInt16) throws(ECC608Error) -> [UInt8] {
        guard digest.count == 32 else {
            throw ECC608Error(.communication, "the ECC608 signs a 32-byte digest, not \(digest.count) bytes")
        }
        return try run { () throws(ECC608Error) in
            let status = try execute(.passThroughNonce(digest))
            guard status == [ECC608Status.success.rawValue] else {
                throw ECC608Error(.communication, "Nonce answered \(status) instead of success on \(device.name)")
            }
            return try execute(.signExternal(slot: slot))
        }
    }

    // MARK: Sessions

    /// Wakes the chip, runs `body`, puts the chip to sleep; tries again from a fresh wake
    /// when the chip fell asleep, a response was garbled or the status says a retry may succeed.
    private func run<T: Sendable>(_ body: () throws(ECC608Error) -> T) throws(ECC608Error) -> T {
        try session.withLock { _ throws(ECC608Error) -> T in
            try device.bus.exclusively { () throws(ECC608Error) -> T in try attempts(body) }
        }
    }

    private func attempts<T: Sendable>(_ body: () throws(ECC608Error) -> T) throws(ECC608Error) -> T {
        var lastError = ECC608Error(.notResponding, "no ECC608 answered on \(device.name)")
        for attempt in 0..<max(timing.attempts, 1) {
            do throws(ECC608Error) {
                try wake()
                let value = try body()
                sleepChip()
                return value
            } catch {
                sleepChip()
                lastError = error
                guard Self.isRetryable(error) else { throw error }
                if attempt + 1 < timing.attempts { sleep(timing.pollInterval) }
            }
        }
        throw lastError
    }

    /// Whether trying again (now, or at the next start) may succeed.
    public static func isRetryable(_ error: ECC608Error) -> Bool {
        switch error.kind {
        case .notResponding, .communication: true
        case .status(let status): status.isRetryable
        case .bus(let kind): kind == .nack || kind == .timeout || kind == .busBusy
        case .wrongRevision, .unusableKey: false
        }
    }

    /// Sleep first (a chip left awake would ignore the wake), then the wake pulse: SDA held
    /// low through a write to the general-call address, which nobody acknowledges; then tWHI,
    /// and the chip's 0x11 "awake" status.
    private func wake() throws(ECC608Error) {
        sleepChip()
        _ = try? device.bus.transfer(address: 0x00, [.write([0x00])])
        sleep(timing.wakeDelay)
        let response: [UInt8]
        do {
            response = try device.read(4)
        } catch  where error.kind == .nack || error.kind == .timeout {
            throw ECC608Error(
                .notResponding,
                "no ECC608 answered on \(device.name) after a wake: is the address right, and is I2C enabled?")
        } catch {
            throw ECC608Error(.bus(error.kind), error.message)
        }
        guard response == [0x04, 0x11, 0x33, 0x43] else {
            if response.count == 4, response[0] == 0x04, ECC608CRC.bytes(response[0..<2]) == Array(response[2..<4]),
                let status = ECC608Status(rawValue: response[1])
            {
                throw ECC608Error(.status(status), "the ECC608 on \(device.name) woke with \(status.meaning)")
            }
            throw ECC608Error(.communication, "the ECC608 on \(device.name) woke with \(spacedHex(response))")
        }
    }

    private func sleepChip() {
        _ = try? device.write([ECC608WordAddress.sleep.rawValue])
    }

    /// Sends one command and polls for its response until its maximum execution time.
    private func execute(_ command: ECC608Command) throws(ECC608Error) -> [UInt8] {
        do {
            try device.write([ECC608WordAddress.command.rawValue] + command.packet)
        } catch {
            throw busError(error, while: "sending \(command.opcode)")
        }
        let deadline =
            monotonicNanoseconds() + UInt64(nanoseconds(command.opcode.maximumExecution))
            + UInt64(nanoseconds(timing.pollInterval))
        sleep(timing.firstPoll)
        var count: UInt8
        while true {
            do {
                count = try device.read(1)[0]
                break
            } catch  where error.kind == .nack {
                // Still executing, or asleep after its watchdog.
                guard monotonicNanoseconds() < deadline else {
                    throw ECC608Error(
                        .notResponding,
                        "the ECC608 on \(device.name) gave no response to \(command.opcode) within its execution time")
                }
                sleep(timing.pollInterval)
            } catch {
                throw busError(error, while: "reading the response to \(command.opcode)")
            }
        }
        let expected = command.responseLength + 3
        guard count == 4 || Int(count) == expected else {
            throw ECC608Error(
                .communication,
                "the ECC608 on \(device.name) answered \(command.opcode) with a count of \(count), not \(expected)")
        }
        let rest: [UInt8]
        do {
            rest = try device.read(Int(count) - 1)
        } catch {
            throw busError(error, while: "reading the response to \(command.opcode)")
        }
        let response = [count] + rest
        guard ECC608CRC.bytes(response.dropLast(2)) == Array(response.suffix(2)) else {
            throw ECC608Error(.communication, "the response to \(command.opcode) from \(device.name) failed its CRC")
        }
        let data = Array(response[1..<(response.count - 2)])
        if count == 4 && !(command.responseLength == 1 && data[0] == ECC608Status.success.rawValue) {
            let status = ECC608Status(rawValue: data[0])
            guard let status, status != .success else {
                throw ECC608Error(
                    .communication, "the ECC608 on \(device.name) answered \(command.opcode) with status \(data[0])")
            }
            throw ECC608Error(
                .status(status), "the ECC608 on \(device.name) answered \(command.opcode) with \(status.meaning)")
        }
        return data
    }

    private func busError(_ error: HardwareError, while doing: String) -> ECC608Error {
        switch error.kind {
        case .nack, .timeout:
            ECC608Error(.notResponding, "the ECC608 on \(device.name) stopped answering while \(doing)")
        default:
            ECC608Error(.bus(error.kind), "\(error.message) (\(doing))")
        }
    }

    private func sleep(_ duration: Duration) {
        sleepMicroseconds(Int(nanoseconds(duration) / 1000))
    }
}

private func nanoseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
}

/// Bytes as the datasheet writes them: `00 00 60 02`.
func spacedHex(_ bytes: [UInt8]) -> String {
    bytes.map { $0 < 0x10 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
}
