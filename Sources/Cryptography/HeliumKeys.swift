#if canImport(Glibc)
    import Wire
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Base58 with Bitcoin's alphabet, and Base58Check (a 4-byte double-SHA-256 checksum).
public enum Base58 {
    private static let alphabet = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        let zeros = bytes.prefix { $0 == 0 }.count
        var digits: [UInt8] = []  // base-58 digits, least significant first
        for byte in bytes {
            var carry = Int(byte)
            for index in digits.indices {
                carry += Int(digits[index]) << 8
                digits[index] = UInt8(carry % 58)
                carry /= 58
            }
            while carry > 0 {
                digits.append(UInt8(carry % 58))
                carry /= 58
            }
        }
        let text = [UInt8](repeating: alphabet[0], count: zeros) + digits.reversed().map { alphabet[Int($0)] }
        return String(decoding: text, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var values = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in alphabet.enumerated() { values[Int(character)] = UInt8(index) }
        let characters = Array(text.utf8)
        guard characters.count <= 1024 else { return nil }
        let zeros = characters.prefix { $0 == alphabet[0] }.count
        var bytes: [UInt8] = []  // least significant first
        for character in characters {
            let value = values[Int(character)]
            guard value != 0xFF else { return nil }
            var carry = Int(value)
            for index in bytes.indices {
                carry += Int(bytes[index]) * 58
                bytes[index] = UInt8(carry & 0xFF)
                carry >>= 8
            }
            while carry > 0 {
                bytes.append(UInt8(carry & 0xFF))
                carry >>= 8
            }
        }
        return [UInt8](repeating: 0, count: zeros) + bytes.reversed()
    }

    /// Base58 of `payload` followed by the first four bytes of SHA-256(SHA-256(payload)).
    public static func encodeCheck(_ payload: [UInt8]) -> String {
        encode(payload + SHA256.hash(SHA256.hash(payload)).prefix(4))
    }

    /// The payload of a Base58Check string whose checksum holds, or nil.
    public static func decodeCheck(_ text: String) -> [UInt8]? {
        guard let bytes = decode(text), bytes.count >= 4 else { return nil }
        let payload = Array(bytes.dropLast(4))
        guard Array(bytes.suffix(4)) == Array(SHA256.hash(SHA256.hash(payload)).prefix(4)) else { return nil }
        return payload
    }
}

/// Helium's key and address encodings (helium-crypto-rs): a key's binary form is a tag byte,
/// network (mainnet 0x00, testnet 0x10) OR key type (ecc_compact 0x00, ed25519 0x01), then
/// the key; an address is Base58Check of a version byte 0x00 and the binary public key.
public enum Helium {
    public static let ed25519Tag: UInt8 = 0x01
    public static let eccCompactTag: UInt8 = 0x00

    /// The address of an Ed25519 public key on mainnet: base58check(0x00 ‖ 0x01 ‖ key).
    public static func address(of key: Ed25519PublicKey) -> String {
        Base58.encodeCheck([0x00, ed25519Tag] + key.bytes)
    }

    /// The Ed25519 public key an address names; nil for a bad checksum, another key type or
    /// another network.
    public static func publicKey(fromAddress address: String) -> Ed25519PublicKey? {
        guard let payload = Base58.decodeCheck(address), payload.count == 34,
            payload[0] == 0x00, payload[1] == ed25519Tag
        else { return nil }
        return try? Ed25519PublicKey(bytes: Array(payload[2...]))
    }

    /// The binary form of a keypair file: the tag byte, then the 64-byte secret (the 32-byte
    /// seed followed by the 32-byte public key).
    public static func keypairBytes(_ key: Ed25519PrivateKey) -> [UInt8] {
        [ed25519Tag] + key.seed + key.publicKey.bytes
    }

    public static func privateKey(fromKeypairBytes bytes: [UInt8]) throws(CryptoError) -> Ed25519PrivateKey {
        guard bytes.count == 65 else {
            throw CryptoError("a Helium Ed25519 keypair is 65 bytes (tag and 64-byte secret), not \(bytes.count)")
        }
        guard bytes[0] == ed25519Tag else {
            throw CryptoError("key type 0x\(String(bytes[0], radix: 16)) is not an Ed25519 mainnet key (0x01)")
        }
        let key = try Ed25519PrivateKey(seed: Array(bytes[1..<33]))
        guard key.publicKey.bytes == Array(bytes[33..<65]) else {
            throw CryptoError("the keypair's public key does not belong to its secret")
        }
        return key
    }
}

/// A key file in Helium's keypair format, guarded like ssh guards its keys: created with mode
/// 0600, and refused when group or others may read it.
public enum KeyFile {
    public static func read(_ path: String) throws(CryptoError) -> Ed25519PrivateKey {
        guard access(path, F_OK) == 0 || errno != ENOENT else {
            throw CryptoError("no key file; `hotspotd key generate --key-file \(path)` creates one (\(path))")
        }
        return try Helium.privateKey(fromKeypairBytes: readPrivateFile(path, expected: 65))
    }

    /// The key in `path`, created (mode 0600, in a directory created 0700 if needed) when there
    /// is none yet: what the agent does on its first start. A key others may read is refused.
    public static func loadOrCreate(_ path: String) throws(CryptoError) -> (key: Ed25519PrivateKey, created: Bool) {
        if access(path, F_OK) == 0 {
            return (try read(path), false)
        }
        let key = Ed25519PrivateKey.generate()
        try create(path, key: key)
        return (key, true)
    }

    /// Writes a new key file with mode 0600, in a directory created 0700 when it does not
    /// exist yet; refuses to overwrite one.
    public static func create(_ path: String, key: Ed25519PrivateKey) throws(CryptoError) {
        try writePrivateFile(path, bytes: Helium.keypairBytes(key))
    }
}

/// The bytes of a secret file (at most `expected` + 1 read, so a longer file shows as the
/// wrong size): refused when group or others may read it, as ssh refuses its keys.
func readPrivateFile(_ path: String, expected: Int) throws(CryptoError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw CryptoError("cannot read the key: \(String(cString: strerror(errno))) (\(path))")
    }
    defer { close(fd) }
    var status = stat()
    guard fstat(fd, &status) == 0 else {
        throw CryptoError("cannot read the key's mode: \(String(cString: strerror(errno))) (\(path))")
    }
    if status.st_mode & 0o077 != 0 {
        let mode = String(status.st_mode & 0o777, radix: 8)
        throw CryptoError(
            "the key has mode 0\(mode), and must be readable by its owner only: `chmod 600 \(path)` (\(path))")
    }
    var bytes = [UInt8](repeating: 0, count: expected + 1)
    let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
    guard count >= 0 else {
        throw CryptoError("cannot read the key: \(String(cString: strerror(errno))) (\(path))")
    }
    return Array(bytes[0..<count])
}

/// Writes a new secret file with mode 0600, in a directory created 0700 when it does not
/// exist yet; refuses to overwrite one.
func writePrivateFile(_ path: String, bytes: [UInt8]) throws(CryptoError) {
    try createDirectories(for: path)
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
        let code = errno
        throw CryptoError(
            code == EEXIST
                ? "a key file is there already, and is never overwritten (\(path))"
                : "cannot create the key file: \(String(cString: strerror(code))) (\(path))")
    }
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count, fsync(fd) == 0 else {
        unlink(path)
        throw CryptoError("cannot write the key file (\(path))")
    }
}

/// Creates the directories above `path` that do not exist yet, each 0700.
private func createDirectories(for path: String) throws(CryptoError) {
    guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
    let directory = String(path[..<slash])
    guard access(directory, F_OK) != 0 else { return }
    try createDirectories(for: directory)
    if mkdir(directory, 0o700) != 0 && errno != EEXIST {
        throw CryptoError("cannot create the key file's directory: \(String(cString: strerror(errno))) (\(directory))")
    }
}

/// A gateway's identity: what signs for it (an Ed25519 key in a file, or the P-256 key of a
/// secure element), its Helium address, its EUI-64, and the X25519 key secrets are sealed to.
public struct GatewayIdentity: Sendable {
    public let signer: any GatewaySigner
    public let publicKey: HeliumPublicKey
    public let address: String
    /// 16 lower-case hex digits: the configured `gateway.id`, or derived from the key.
    public let gatewayID: String
    public let sealingKey: X25519PrivateKey

    public init(signer: any GatewaySigner, sealingKey: X25519PrivateKey, gatewayID: String? = nil) {
        self.signer = signer
        publicKey = signer.heliumKey
        address = signer.heliumKey.address
        self.sealingKey = sealingKey
        self.gatewayID = gatewayID?.lowercased() ?? Self.derivedGatewayID(of: signer.heliumKey)
    }

    /// An Ed25519 key file's identity: its sealing key is derived from the seed.
    public init(key: Ed25519PrivateKey, gatewayID: String? = nil) {
        self.init(signer: key, sealingKey: key.sealingKey, gatewayID: gatewayID)
    }

    /// The first eight bytes of SHA-256 of the public key (its 32 bytes: the Ed25519 key, or
    /// the P-256 key's X), marked as a locally administered, unicast EUI-64 (bit 1 of the first
    /// byte set, bit 0 cleared), so it cannot clash with a manufacturer's EUI.
    public static func derivedGatewayID(of key: HeliumPublicKey) -> String {
        var bytes = Array(SHA256.hash(key.keyBytes).prefix(8))
        bytes[0] = (bytes[0] | 0x02) & ~0x01
        return Hex.encode(bytes)
    }

    public static func derivedGatewayID(of key: Ed25519PublicKey) -> String {
        derivedGatewayID(of: .ed25519(key))
    }
}
