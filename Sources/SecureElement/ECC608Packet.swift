/// The ATECC608's CRC-16 (Microchip's `atCRC`): polynomial 0x8005, initial value 0, each byte
/// taken least significant bit first, no final XOR; sent low byte first. It covers a packet
/// from its count byte to the end of its data.
public enum ECC608CRC {
    public static func value(_ bytes: some Sequence<UInt8>) -> UInt16 {
        var register: UInt16 = 0
        for byte in bytes {
            for bit in 0..<8 {
                let dataBit = (byte >> bit) & 1
                let crcBit = UInt8(register >> 15)
                register <<= 1
                if dataBit != crcBit { register ^= 0x8005 }
            }
        }
        return register
    }

    /// The two CRC bytes as they travel: low byte first.
    public static func bytes(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        let crc = value(bytes)
        return [UInt8(crc & 0xFF), UInt8(crc >> 8)]
    }
}

/// The commands hotspotd sends, by opcode. Nothing that writes, locks or creates a key is here.
public enum ECC608Opcode: UInt8, Sendable {
    case read = 0x02
    case nonce = 0x16
    case random = 0x1B
    case info = 0x30
    case genKey = 0x40
    case sign = 0x41

    /// The longest the chip may take (Microchip's CryptoAuthLib, ATECC608 at clock divider M0).
    public var maximumExecution: Duration {
        switch self {
        case .info, .read: .milliseconds(5)
        case .nonce: .milliseconds(20)
        case .random: .milliseconds(23)
        case .genKey, .sign: .milliseconds(115)
        }
    }
}

/// A command packet: count, opcode, param1, param2 (little endian), data, CRC-16.
public struct ECC608Command: Sendable, Hashable {
    public var opcode: ECC608Opcode
    public var param1: UInt8
    public var param2: UInt16
    public var data: [UInt8]
    /// Data bytes expected in a successful response (a 1-byte status for Nonce pass-through).
    public var responseLength: Int

    /// The packet after the command word address (0x03): count through CRC.
    public var packet: [UInt8] {
        let body = [UInt8(7 + data.count), opcode.rawValue, param1, UInt8(param2 & 0xFF), UInt8(param2 >> 8)] + data
        return body + ECC608CRC.bytes(body)
    }

    /// Info, mode Revision: 4 bytes, `00 00 60 0x` for an ATECC608.
    public static let revision = ECC608Command(opcode: .info, param1: 0x00, param2: 0, data: [], responseLength: 4)

    /// Random, seed updated: 32 bytes.
    public static let random = ECC608Command(opcode: .random, param1: 0x00, param2: 0, data: [], responseLength: 32)

    /// Read one 32-byte block (0 to 3) of the configuration zone.
    public static func readConfiguration(block: UInt8) -> ECC608Command {
        ECC608Command(opcode: .read, param1: 0x80, param2: UInt16(block) << 3, data: [], responseLength: 32)
    }

    /// GenKey in public-key mode: the public key of the private key already in `slot` (X ‖ Y).
    public static func publicKey(slot: UInt16) -> ECC608Command {
        ECC608Command(opcode: .genKey, param1: 0x00, param2: slot, data: [], responseLength: 64)
    }

    /// Nonce in pass-through mode: the 32 bytes go into TempKey unchanged.
    public static func passThroughNonce(_ digest: [UInt8]) -> ECC608Command {
        ECC608Command(opcode: .nonce, param1: 0x03, param2: 0, data: digest, responseLength: 1)
    }

    /// Sign, external message: ECDSA over the digest in TempKey with the key in `slot` (R ‖ S).
    public static func signExternal(slot: UInt16) -> ECC608Command {
        ECC608Command(opcode: .sign, param1: 0x80, param2: slot, data: [], responseLength: 64)
    }
}

/// The status byte of a 4-byte response.
public enum ECC608Status: UInt8, Sendable {
    case success = 0x00
    case miscompare = 0x01
    case parseError = 0x03
    case eccFault = 0x05
    case selfTestError = 0x07
    case healthTestError = 0x08
    case executionError = 0x0F
    case afterWake = 0x11
    case watchdogAboutToExpire = 0xEE
    case communicationError = 0xFF

    public var meaning: String {
        switch self {
        case .success: "success"
        case .miscompare: "miscompare"
        case .parseError: "parse error (a command the chip does not accept)"
        case .eccFault: "ECC fault"
        case .selfTestError: "self-test error"
        case .healthTestError: "random number generator health test error"
        case .executionError: "execution error (the slot's configuration forbids the command)"
        case .afterWake: "awake, no command yet"
        case .watchdogAboutToExpire: "watchdog about to expire"
        case .communicationError: "CRC or communication error"
        }
    }

    /// Whether sending the command again may succeed: everything but a command the chip
    /// refuses as such (parse and execution errors).
    public var isRetryable: Bool {
        self != .parseError && self != .executionError && self != .success
    }
}

/// The I2C word address that starts each write to the chip.
public enum ECC608WordAddress: UInt8, Sendable {
    case reset = 0x00
    case sleep = 0x01
    case idle = 0x02
    case command = 0x03
}

/// The configuration zone (128 bytes), as far as a hotspot reads it.
public struct ECC608Configuration: Sendable, Hashable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 128, "the ECC608 configuration zone is 128 bytes")
        self.bytes = bytes
    }

    /// The 9-byte serial number (bytes 0–3 and 8–12).
    public var serialNumber: [UInt8] { Array(bytes[0..<4]) + Array(bytes[8..<13]) }
    /// RevNum (bytes 4–7), the same as Info's revision.
    public var revision: [UInt8] { Array(bytes[4..<8]) }
    /// The configuration zone is locked (LockConfig, byte 87, 0x00).
    public var configurationLocked: Bool { bytes[87] == 0x00 }
    /// The data and OTP zones are locked (LockValue, byte 86, 0x00).
    public var dataLocked: Bool { bytes[86] == 0x00 }

    /// SlotConfig of a slot (bytes 20–51, little endian).
    public func slotConfig(_ slot: Int) -> UInt16 {
        UInt16(bytes[20 + 2 * slot]) | UInt16(bytes[21 + 2 * slot]) << 8
    }

    /// KeyConfig of a slot (bytes 96–127, little endian).
    public func keyConfig(_ slot: Int) -> UInt16 {
        UInt16(bytes[96 + 2 * slot]) | UInt16(bytes[97 + 2 * slot]) << 8
    }

    /// The slot holds a P-256 private key: KeyConfig's KeyType (bits 2–4) is 4 and Private (bit 0) is set.
    public func holdsP256PrivateKey(_ slot: Int) -> Bool {
        let config = keyConfig(slot)
        return (config >> 2) & 0x7 == 4 && config & 1 == 1
    }
}
