import CCrypto

/// An X25519 key pair (RFC 7748), for key agreement.
public struct X25519PrivateKey: Sendable {
    let bytes: [UInt8]
    public let publicKey: [UInt8]

    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == 32 else { throw CryptoError("an X25519 private key is 32 bytes, not \(bytes.count)") }
        var publicBytes = [UInt8](repeating: 0, count: 32)
        guard hs_x25519_public_key(bytes, &publicBytes) == 1 else {
            throw CryptoError("libcrypto refused the X25519 key")
        }
        self.bytes = bytes
        publicKey = publicBytes
    }

    public static func generate() -> X25519PrivateKey {
        try! X25519PrivateKey(bytes: secureRandomBytes(32))
    }

    /// The shared secret with `peer`'s public key.
    public func sharedSecret(with peer: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard peer.count == 32 else { throw CryptoError("an X25519 public key is 32 bytes, not \(peer.count)") }
        var shared = [UInt8](repeating: 0, count: 32)
        guard hs_x25519(bytes, peer, &shared) == 1 else {
            throw CryptoError("no shared secret with that X25519 public key")
        }
        return shared
    }
}

extension Ed25519PrivateKey {
    /// The gateway's sealing key: an X25519 key derived from its identity seed, so that it needs
    /// no file of its own and changes only with the identity. Secrets sent to the gateway (a
    /// sensor's NwkSKey) are sealed to its public half, which `hotspotd key show` prints.
    public var sealingKey: X25519PrivateKey {
        try! X25519PrivateKey(bytes: SHA256.hash(Array("hotspotd sealing key v1".utf8) + seed))
    }
}

/// A 16-byte secret (a NwkSKey) sealed to one gateway's X25519 key, inside a command the
/// network authority signs: only that gateway can open it, and anyone who reads the command on
/// the broker learns nothing of the key.
///
/// Sealed = E ‖ C ‖ T (56 bytes): E an ephemeral X25519 public key; with S = X25519(e, G) and
/// K = SHA-256("hotspotd seal v1" ‖ S ‖ E ‖ G ‖ gateway ID), C = secret ⊕ K[0..<16] and
/// T = AES-CMAC(K[16..<32], E ‖ C)[0..<8], which tells a seal made for another key (or
/// gateway) from the right one. The ephemeral key is new for each seal, so K is used once;
/// the command's signature covers the rest.
public enum SecretSeal {
    public static let sealedLength = 56

    public static func seal(_ secret: [UInt8], to gatewayKey: [UInt8], gatewayID: String) throws(CryptoError) -> [UInt8]
    {
        guard secret.count == 16 else { throw CryptoError("a sealed secret is 16 bytes, not \(secret.count)") }
        let ephemeral = X25519PrivateKey.generate()
        let key = try derive(
            ephemeral.sharedSecret(with: gatewayKey), ephemeral: ephemeral.publicKey, gateway: gatewayKey,
            gatewayID: gatewayID)
        let ciphertext = zip(secret, key.prefix(16)).map { $0 ^ $1 }
        let tag = try AESCMAC.mac(key: Array(key[16..<32]), message: ephemeral.publicKey + ciphertext).prefix(8)
        return ephemeral.publicKey + ciphertext + tag
    }

    public static func open(_ sealed: [UInt8], with key: X25519PrivateKey, gatewayID: String) throws(CryptoError)
        -> [UInt8]
    {
        guard sealed.count == sealedLength else {
            throw CryptoError("a sealed secret is \(sealedLength) bytes, not \(sealed.count)")
        }
        let ephemeral = Array(sealed[0..<32])
        let ciphertext = Array(sealed[32..<48])
        let tag = Array(sealed[48..<56])
        let derived = try derive(
            key.sharedSecret(with: ephemeral), ephemeral: ephemeral, gateway: key.publicKey, gatewayID: gatewayID)
        let expected = try AESCMAC.mac(key: Array(derived[16..<32]), message: ephemeral + ciphertext).prefix(8)
        guard constantTimeEquals(Array(expected), tag) else { throw CryptoError("sealed to another gateway's key") }
        return zip(ciphertext, derived.prefix(16)).map { $0 ^ $1 }
    }

    private static func derive(_ shared: [UInt8], ephemeral: [UInt8], gateway: [UInt8], gatewayID: String) -> [UInt8] {
        SHA256.hash(Array("hotspotd seal v1".utf8) + shared + ephemeral + gateway + Array(gatewayID.lowercased().utf8))
    }
}
