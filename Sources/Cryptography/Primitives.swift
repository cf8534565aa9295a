import CCrypto

/// Why a cryptographic operation failed: a wrong key size, or libcrypto refused.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// AES-128 block operations (ECB, one block at a time), as LoRaWAN uses them.
public enum AES128 {
    /// Encrypts whole 16-byte blocks with `key`.
    public static func encrypt(key: [UInt8], blocks: [UInt8]) throws(CryptoError) -> [UInt8] {
        try run(key: key, blocks: blocks, encrypt: true)
    }

    /// Decrypts whole 16-byte blocks with `key`.
    public static func decrypt(key: [UInt8], blocks: [UInt8]) throws(CryptoError) -> [UInt8] {
        try run(key: key, blocks: blocks, encrypt: false)
    }

    private static func run(key: [UInt8], blocks: [UInt8], encrypt: Bool) throws(CryptoError) -> [UInt8] {
        guard key.count == 16 else { throw CryptoError("an AES-128 key is 16 bytes, not \(key.count)") }
        guard blocks.count % 16 == 0 else {
            throw CryptoError("AES works on 16-byte blocks, not \(blocks.count) bytes")
        }
        guard !blocks.isEmpty else { return [] }
        var output = [UInt8](repeating: 0, count: blocks.count)
        let ok =
            encrypt
            ? hs_aes128_ecb_encrypt(key, blocks, &output, blocks.count / 16)
            : hs_aes128_ecb_decrypt(key, blocks, &output, blocks.count / 16)
        guard ok == 1 else { throw CryptoError("libcrypto refused AES-128") }
        return output
    }
}

/// AES-CMAC (RFC 4493).
public enum AESCMAC {
    public static func mac(key: [UInt8], message: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard key.count == 16 else { throw CryptoError("an AES-128 key is 16 bytes, not \(key.count)") }
        var output = [UInt8](repeating: 0, count: 16)
        guard hs_aes128_cmac(key, message, message.count, &output) == 1 else {
            throw CryptoError("libcrypto refused AES-CMAC")
        }
        return output
    }
}

/// SHA-256 (FIPS 180-4).
public enum SHA256 {
    public static func hash(_ message: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        let ok = hs_sha256(message, message.count, &digest)
        precondition(ok == 1, "libcrypto failed to compute SHA-256")
        return digest
    }
}

/// Cryptographically secure random bytes from libcrypto.
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    let ok = hs_random_bytes(&bytes, count)
    precondition(ok == 1, "libcrypto could not produce random bytes")
    return bytes
}

/// Whether two byte strings are equal, in a time that depends on their length only
/// (OpenSSL's CRYPTO_memcmp): a MIC compared byte by byte, stopping at the first difference,
/// would tell a forger through timing how many leading bytes were right.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { left in
        b.withUnsafeBytes { right in CRYPTO_memcmp(left.baseAddress, right.baseAddress, a.count) == 0 }
    }
}
