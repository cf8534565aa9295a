import CCrypto

/// An Ed25519 public key (RFC 8032), 32 bytes.
public struct Ed25519PublicKey: Hashable, Sendable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == 32 else { throw CryptoError("an Ed25519 public key is 32 bytes, not \(bytes.count)") }
        self.bytes = bytes
    }

    /// Whether `signature` is this key's signature of `message`.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard signature.count == 64 else { return false }
        return hs_ed25519_verify(bytes, message, message.count, signature) == 1
    }
}

/// An Ed25519 private key, kept as its 32-byte seed (RFC 8032's "private key").
public struct Ed25519PrivateKey: Sendable {
    /// The secret itself: only this module reads it (to sign, and to write a key file).
    let seed: [UInt8]
    public let publicKey: Ed25519PublicKey

    public init(seed: [UInt8]) throws(CryptoError) {
        guard seed.count == 32 else { throw CryptoError("an Ed25519 seed is 32 bytes, not \(seed.count)") }
        var publicBytes = [UInt8](repeating: 0, count: 32)
        guard hs_ed25519_public_key(seed, &publicBytes) == 1 else {
            throw CryptoError("libcrypto refused the Ed25519 seed")
        }
        self.seed = seed
        publicKey = try Ed25519PublicKey(bytes: publicBytes)
    }

    /// A new key from the system's secure random source.
    public static func generate() -> Ed25519PrivateKey {
        // A random seed is always a valid key.
        try! Ed25519PrivateKey(seed: secureRandomBytes(32))
    }

    public func signature(for message: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: 64)
        let ok = hs_ed25519_sign(seed, message, message.count, &signature)
        precondition(ok == 1, "libcrypto failed to sign with a valid Ed25519 key")
        return signature
    }
}
