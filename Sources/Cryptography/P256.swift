import CCrypto

/// A NIST P-256 public key (a point of the curve), as an ATECC608 secure element holds one.
///
/// Helium's `ecc_compact` key type sends only X: of the two points with that X it means the
/// one whose Y is the smaller of y and p − y (the "compact" point), so a key is usable as an
/// `ecc_compact` key only when its Y is that one. A secure element provisioned for Helium
/// holds such a key.
public struct P256PublicKey: Hashable, Sendable {
    /// The X coordinate, 32 big-endian bytes.
    public let x: [UInt8]
    /// The Y coordinate, 32 big-endian bytes.
    public let y: [UInt8]

    /// A key from X and Y (64 bytes, as the ATECC608's GenKey returns it) or from SEC 1's
    /// uncompressed form (65 bytes, 0x04 first); the point must be on the curve.
    public init(coordinates bytes: [UInt8]) throws(CryptoError) {
        let uncompressed: [UInt8]
        switch bytes.count {
        case 64: uncompressed = [0x04] + bytes
        case 65 where bytes[0] == 0x04: uncompressed = bytes
        default:
            throw CryptoError(
                "a P-256 public key is X and Y (64 bytes, or 65 with the 0x04 prefix), not \(bytes.count) bytes")
        }
        guard hs_p256_is_on_curve(uncompressed) == 1 else {
            throw CryptoError("those coordinates are not a point of the P-256 curve")
        }
        x = Array(uncompressed[1..<33])
        y = Array(uncompressed[33..<65])
    }

    /// The compact point with this X: of its two Y values, the smaller of y and p − y.
    public init(compactX x: [UInt8]) throws(CryptoError) {
        guard x.count == 32 else { throw CryptoError("a compact P-256 key is its 32-byte X, not \(x.count) bytes") }
        var even = [UInt8](repeating: 0, count: 65)
        var odd = [UInt8](repeating: 0, count: 65)
        guard hs_p256_decompress(x, 0, &even) == 1, hs_p256_decompress(x, 1, &odd) == 1 else {
            throw CryptoError("no point of the P-256 curve has that X")
        }
        let evenY = Array(even[33...])
        let oddY = Array(odd[33...])
        self.x = x
        y = evenY.lexicographicallyPrecedes(oddY) ? evenY : oddY
    }

    /// SEC 1's uncompressed encoding: 0x04 ‖ X ‖ Y.
    public var uncompressed: [UInt8] { [0x04] + x + y }

    /// Whether X alone names this point: Y is the smaller of y and p − y.
    public var isCompact: Bool {
        (try? P256PublicKey(compactX: x)) == self
    }

    /// Whether `signature` (DER) is this key's ECDSA signature of SHA-256(`message`).
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        isValidSignature(signature, forDigest: SHA256.hash(message))
    }

    /// Whether `signature` (DER) is this key's ECDSA signature of a 32-byte digest.
    public func isValidSignature(_ signature: [UInt8], forDigest digest: [UInt8]) -> Bool {
        guard digest.count == 32, !signature.isEmpty, signature.count <= 80 else { return false }
        return hs_p256_verify_digest(uncompressed, digest, signature, signature.count) == 1
    }
}

/// A P-256 private key held in memory: what the simulated secure element keeps in its slot,
/// and what tests sign with. A hotspot's own P-256 key never leaves its secure element.
public struct P256PrivateKey: Sendable {
    let scalar: [UInt8]
    public let publicKey: P256PublicKey

    public init(scalar: [UInt8]) throws(CryptoError) {
        guard scalar.count == 32 else { throw CryptoError("a P-256 private key is 32 bytes, not \(scalar.count)") }
        var point = [UInt8](repeating: 0, count: 65)
        guard hs_p256_public_key(scalar, &point) == 1 else {
            throw CryptoError("that scalar is not a P-256 private key (zero, or not below the group order)")
        }
        self.scalar = scalar
        publicKey = try P256PublicKey(coordinates: point)
    }

    /// A key whose public point is compact, from `seed` deterministically: SHA-256 of the seed
    /// and a counter until the point qualifies, as Helium's provisioning draws keys until one does.
    public static func compact(seed: [UInt8]) -> P256PrivateKey {
        var counter: UInt32 = 0
        while true {
            let candidate = SHA256.hash(seed + withUnsafeBytes(of: counter.bigEndian, Array.init))
            if let key = try? P256PrivateKey(scalar: candidate), key.publicKey.isCompact { return key }
            counter += 1
        }
    }

    /// A new key with a compact public point, from the system's secure random source.
    public static func generateCompact() -> P256PrivateKey {
        compact(seed: secureRandomBytes(32))
    }

    /// The DER ECDSA signature of a 32-byte digest.
    public func signature(forDigest digest: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard digest.count == 32 else {
            throw CryptoError("ECDSA P-256 signs a 32-byte digest, not \(digest.count) bytes")
        }
        var der = [UInt8](repeating: 0, count: 72)
        var length = 0
        guard hs_p256_sign_digest(scalar, digest, &der, &length) == 1 else {
            throw CryptoError("libcrypto failed to sign with the P-256 key")
        }
        return Array(der[0..<length])
    }
}

/// ECDSA signatures between the two forms they travel in: the ATECC608's raw R ‖ S (64 bytes)
/// and DER's `SEQUENCE { INTEGER r, INTEGER s }`, which Helium's `ecc_compact` signatures use.
public enum ECDSASignature {
    /// The DER encoding of a raw 64-byte R ‖ S.
    public static func der(raw: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard raw.count == 64 else { throw CryptoError("a raw P-256 signature is R and S, 64 bytes, not \(raw.count)") }
        func integer(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            var value = Array(bytes.drop { $0 == 0 })
            if value.isEmpty { value = [0] }
            if value[0] & 0x80 != 0 { value.insert(0, at: 0) }
            return [0x02, UInt8(value.count)] + value
        }
        let body = integer(raw[0..<32]) + integer(raw[32..<64])
        return [0x30, UInt8(body.count)] + body
    }

    /// The raw R ‖ S of a DER signature; nil for anything that is not a strict DER encoding of
    /// two positive integers that fit 32 bytes.
    public static func raw(der: [UInt8]) -> [UInt8]? {
        guard der.count >= 8, der.count <= 72, der[0] == 0x30, Int(der[1]) == der.count - 2 else { return nil }
        var index = 2
        var out: [UInt8] = []
        for _ in 0..<2 {
            guard index + 2 <= der.count, der[index] == 0x02 else { return nil }
            let length = Int(der[index + 1])
            index += 2
            guard length >= 1, index + length <= der.count else { return nil }
            let value = Array(der[index..<index + length])
            index += length
            // Positive, minimal: no sign bit, no needless leading zero.
            guard value[0] & 0x80 == 0, !(value.count > 1 && value[0] == 0 && value[1] & 0x80 == 0) else {
                return nil
            }
            let magnitude = Array(value.drop { $0 == 0 })
            guard magnitude.count <= 32 else { return nil }
            out += [UInt8](repeating: 0, count: 32 - magnitude.count) + magnitude
        }
        return index == der.count ? out : nil
    }
}
