#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The two kinds of key Helium knows a gateway by.
public enum HeliumKeyType: String, Sendable, CaseIterable {
    /// Ed25519 (RFC 8032): a key file.
    case ed25519
    /// NIST P-256 in Helium's compact form: a secure element's key.
    case eccCompact = "ecc_compact"
}

/// A gateway's public key as Helium encodes it: a tag byte (network OR key type), then the key:
/// Ed25519's 32 bytes, or the 32-byte X of an `ecc_compact` P-256 point. Mainnet only.
public enum HeliumPublicKey: Hashable, Sendable {
    case ed25519(Ed25519PublicKey)
    case eccCompact(P256PublicKey)

    public var keyType: HeliumKeyType {
        switch self {
        case .ed25519: .ed25519
        case .eccCompact: .eccCompact
        }
    }

    /// The 32 bytes after the tag.
    public var keyBytes: [UInt8] {
        switch self {
        case .ed25519(let key): key.bytes
        case .eccCompact(let key): key.x
        }
    }

    /// Helium's binary form: the tag byte, then the key (33 bytes).
    public var binary: [UInt8] {
        switch self {
        case .ed25519(let key): [Helium.ed25519Tag] + key.bytes
        case .eccCompact(let key): [Helium.eccCompactTag] + key.x
        }
    }

    /// The key in Helium's binary form; a testnet tag, an unknown key type or a wrong size is refused.
    public init(binary: [UInt8]) throws(CryptoError) {
        guard binary.count == 33 else {
            throw CryptoError("a Helium public key is a tag byte and 32 key bytes, not \(binary.count) bytes")
        }
        let key = Array(binary[1...])
        switch binary[0] {
        case Helium.ed25519Tag: self = .ed25519(try Ed25519PublicKey(bytes: key))
        case Helium.eccCompactTag: self = .eccCompact(try P256PublicKey(compactX: key))
        default:
            throw CryptoError(
                """
                key tag 0x\(String(binary[0], radix: 16)) is neither a mainnet ed25519 (0x01) nor ecc_compact (0x00) \
                key
                """
            )
        }
    }

    /// The Helium address: Base58Check of 0x00 ‖ the binary form.
    public var address: String {
        Base58.encodeCheck([0x00] + binary)
    }

    /// The key an address names; nil for a bad checksum, another version or a key it cannot read.
    public init?(address: String) {
        guard let payload = Base58.decodeCheck(address), payload.count == 34, payload[0] == 0x00,
            let key = try? HeliumPublicKey(binary: Array(payload[1...]))
        else { return nil }
        self = key
    }

    /// Whether `signature` is this key's signature of `message`, in the key type's own
    /// encoding: Ed25519's 64 bytes, or DER ECDSA over SHA-256 for `ecc_compact`.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        switch self {
        case .ed25519(let key): key.isValidSignature(signature, for: message)
        case .eccCompact(let key): key.isValidSignature(signature, for: message)
        }
    }
}

/// What signs for the gateway: everything it signs (reports, receipts) goes through this.
/// An Ed25519 key signs in memory; a secure element signs on the chip, which can fail.
public protocol GatewaySigner: Sendable {
    var heliumKey: HeliumPublicKey { get }
    /// The signature of `message`, encoded as `heliumKey`'s type requires. A secure element
    /// blocks the calling thread while the chip works (tens of milliseconds).
    func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8]
    /// The same, from async code: a secure element does its work on a thread of its own, so
    /// that Swift's cooperative pool is never held by a chip. By default, `sign`.
    func signature(of message: [UInt8]) async throws(CryptoError) -> [UInt8]
}

extension GatewaySigner {
    public func signature(of message: [UInt8]) async throws(CryptoError) -> [UInt8] {
        try sign(message)
    }
}

extension Ed25519PrivateKey: GatewaySigner {
    public var heliumKey: HeliumPublicKey { .ed25519(publicKey) }

    public func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        signature(for: message)
    }
}

/// A P-256 key in memory signing as `ecc_compact` (tests, and the simulated secure element's
/// counterpart); its point must be compact.
public struct SoftwareECCSigner: GatewaySigner {
    public let key: P256PrivateKey
    public let heliumKey: HeliumPublicKey

    public init(_ key: P256PrivateKey) throws(CryptoError) {
        guard key.publicKey.isCompact else {
            throw CryptoError("the P-256 key's point is not compact, so Helium's ecc_compact cannot name it")
        }
        self.key = key
        heliumKey = .eccCompact(key.publicKey)
    }

    public func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        try key.signature(forDigest: SHA256.hash(message))
    }
}

/// The X25519 sealing key of a gateway whose identity lives in a secure element (and so has
/// no seed to derive it from): 32 random bytes in a file of its own, mode 0600, made on first use.
public enum SealingKeyFile {
    public static func loadOrCreate(_ path: String) throws(CryptoError) -> X25519PrivateKey {
        if access(path, F_OK) == 0 {
            let bytes = try readPrivateFile(path, expected: 32)
            return try X25519PrivateKey(bytes: bytes)
        }
        let key = X25519PrivateKey.generate()
        try writePrivateFile(path, bytes: key.bytes)
        return key
    }

    /// The key in `path`, which must exist.
    public static func read(_ path: String) throws(CryptoError) -> X25519PrivateKey {
        try X25519PrivateKey(bytes: readPrivateFile(path, expected: 32))
    }
}
