import Clocks
import Cryptography
import HAL
import Synchronization

/// Where a secure element's key is, as Helium's tools write it: `ecc://i2c-1:96?slot=0` is
/// the chip on `/dev/i2c-1` at bus address 96 (0x60), key slot 0. The address defaults to 96
/// and the slot to 0; `network=mainnet` is accepted (hotspotd speaks mainnet only).
public struct ECCKeyURI: Sendable, Hashable, CustomStringConvertible {
    public var bus: String
    public var address: UInt8
    public var slot: UInt16

    public init(bus: String, address: UInt8 = ECC608.defaultAddress, slot: UInt16 = 0) {
        self.bus = bus
        self.address = address
        self.slot = slot
    }

    /// Whether `text` is meant as a URI (and not a file path).
    public static func isURI(_ text: String) -> Bool {
        text.hasPrefix("ecc:")
    }

    public init(parsing text: String) throws(CryptoError) {
        guard text.hasPrefix("ecc://") else {
            throw CryptoError("'\(text)' is not an ecc:// key URI (such as ecc://i2c-1:96?slot=0)")
        }
        var rest = Substring(text.dropFirst(6))
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var host = rest
        var address = ECC608.defaultAddress
        if let colon = rest.firstIndex(of: ":") {
            host = rest[..<colon]
            let port = rest[rest.index(after: colon)...]
            guard let value = UInt8(port), (0x08...0x77).contains(value) else {
                throw CryptoError(
                    "'\(port)' in \(text) is not a device's I2C address in decimal (8 to 119; 96 is 0x60)")
            }
            address = value
        }
        guard !host.isEmpty, !host.contains("/"), host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            throw CryptoError("'\(host)' in \(text) is not an I2C bus name (such as i2c-1)")
        }
        var slot: UInt16 = 0
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count == 2 ? parts[1] : ""
            switch parts[0] {
            case "slot":
                guard let parsed = UInt16(value), parsed < 16 else {
                    throw CryptoError("slot '\(value)' in \(text) is not a key slot (0 to 15)")
                }
                slot = parsed
            case "network":
                guard value == "mainnet" else {
                    throw CryptoError("network '\(value)' in \(text): hotspotd speaks Helium's mainnet only")
                }
            default:
                throw CryptoError("unknown parameter '\(parts[0])' in \(text) (slot, network)")
            }
        }
        bus = "/dev/" + host
        self.address = address
        self.slot = slot
    }

    public var description: String {
        let host = bus.hasPrefix("/dev/") ? String(bus.dropFirst(5)) : bus
        return "ecc://\(host):\(address)?slot=\(slot)"
    }
}

/// The gateway's signer when its key lives in an ATECC608: every signature is made on the
/// chip (SHA-256 here, Nonce + Sign there), then DER-encoded as Helium's `ecc_compact` wants.
public struct ECC608Signer: GatewaySigner {
    public let chip: ECC608
    public let slot: UInt16
    public let heliumKey: HeliumPublicKey
    /// Whether the last signature succeeded (true until one fails): the status LED shows it.
    public let health = SignerHealth()
    /// Where async callers' signatures are made: a thread of the chip's own.
    private let worker: ChipWorker

    /// Reads the slot's public key; refuses a chip that is not an ATECC608 and a key Helium's
    /// compact encoding cannot name.
    public init(chip: ECC608, slot: UInt16) throws(ECC608Error) {
        guard slot < 16 else { throw ECC608Error(.unusableKey, "an ATECC608 has key slots 0 to 15, not \(slot)") }
        let revision = try chip.revision()
        try Self.checkRevision(revision, of: chip)
        let key = try chip.publicKey(slot: slot)
        guard key.isCompact else {
            throw ECC608Error(
                .unusableKey,
                """
                the key in slot \(slot) of the ECC608 on \(chip.device.name) is not compact, so Helium's ecc_compact \
                cannot name it (a hotspot's provisioned key always is: is this the right slot?)
                """)
        }
        self.chip = chip
        self.slot = slot
        heliumKey = .eccCompact(key)
        do {
            worker = try ChipWorker(name: "ecc608")
        } catch {
            throw ECC608Error(.bus(.io), "no thread for the secure element: \(error.message)")
        }
    }

    /// ATECC608A (`00 00 60 02`) and 608B (`00 00 60 03` and later silicon) are accepted.
    public static func checkRevision(_ revision: [UInt8], of chip: ECC608) throws(ECC608Error) {
        guard revision.count == 4, revision[2] == 0x60, revision[3] >= 0x02 else {
            let text = spacedHex(revision)
            throw ECC608Error(
                .wrongRevision(revision),
                """
                the chip on \(chip.device.name) answers revision \(text), which is not an ATECC608 \
                (00 00 60 02 or later)
                """
            )
        }
    }

    public func signature(of message: [UInt8]) async throws(CryptoError) -> [UInt8] {
        try await worker.sign(message, with: self)
    }

    public func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        do {
            let raw = try chip.sign(digest: SHA256.hash(message), slot: slot)
            let signature = try ECDSASignature.der(raw: raw)
            health.record(true)
            return signature
        } catch let error as ECC608Error {
            health.record(false)
            throw CryptoError("the secure element could not sign: \(error.message)")
        } catch {
            health.record(false)
            throw CryptoError("the secure element could not sign: \(error)")
        }
    }
}

/// Runs a chip's blocking sessions on a thread of its own, for async callers.
actor ChipWorker {
    private let executor: ThreadExecutor

    init(name: String) throws(ThreadError) {
        executor = try ThreadExecutor(name: name)
    }

    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    func sign(_ message: [UInt8], with signer: ECC608Signer) throws(CryptoError) -> [UInt8] {
        try signer.sign(message)
    }
}

/// Whether a signer's last attempt succeeded.
public final class SignerHealth: Sendable {
    private let healthy = Atomic(true)
    public init() {}
    public var isHealthy: Bool { healthy.load(ordering: .relaxed) }
    func record(_ success: Bool) { healthy.store(success, ordering: .relaxed) }
}

/// What `board probe` tells of a secure element.
public struct SecureElementReport: Sendable {
    public var device: String
    public var revision: [UInt8]
    public var serialNumber: [UInt8]
    public var configurationLocked: Bool
    public var dataLocked: Bool
    public var slot: UInt16
    public var slotHoldsP256Key: Bool
    public var publicKey: HeliumPublicKey? { signer?.heliumKey }
    /// The chip as the gateway's signer, when it can serve as one.
    public var signer: ECC608Signer?
    /// Why the chip cannot serve as the identity, or nil when it can.
    public var problem: String?

    /// Wakes the chip, reads its revision and configuration, and the slot's public key.
    public static func probe(_ chip: ECC608, slot: UInt16) throws(ECC608Error) -> SecureElementReport {
        guard slot < 16 else { throw ECC608Error(.unusableKey, "an ATECC608 has key slots 0 to 15, not \(slot)") }
        let revision = try chip.revision()
        try ECC608Signer.checkRevision(revision, of: chip)
        let configuration = try chip.configuration()
        var report = SecureElementReport(
            device: chip.device.name, revision: revision, serialNumber: configuration.serialNumber,
            configurationLocked: configuration.configurationLocked, dataLocked: configuration.dataLocked, slot: slot,
            slotHoldsP256Key: configuration.holdsP256PrivateKey(Int(slot)), signer: nil, problem: nil)
        if !report.configurationLocked || !report.dataLocked {
            report.problem =
                "the chip is not provisioned (its zones are unlocked); hotspotd never provisions a chip"
        } else if !report.slotHoldsP256Key {
            report.problem = "slot \(slot) is not configured for a P-256 private key"
        } else {
            do {
                report.signer = try ECC608Signer(chip: chip, slot: slot)
            } catch {
                report.problem = error.message
            }
        }
        return report
    }
}
