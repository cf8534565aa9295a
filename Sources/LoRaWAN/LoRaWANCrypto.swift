import Cryptography
import LoRaPHY

/// LoRaWAN 1.0.x message integrity and confidentiality (L2 1.0.4 §4.3.3, §4.4, §6.2).
public enum LoRaWANCrypto {
    /// The MIC of a data frame: the first four bytes of AES-CMAC(NwkSKey, B0 ‖ msg), where
    /// B0 = 0x49, four zero bytes, the direction (0 up, 1 down), DevAddr and the 32-bit FCnt
    /// (both little-endian), 0x00 and the length of msg.
    public static func dataMIC(key: [UInt8], message: [UInt8], devAddr: DevAddr, fCnt: UInt32, uplink: Bool)
        throws(LoRaWANError) -> [UInt8]
    {
        let b0: [UInt8] =
            [0x49, 0, 0, 0, 0, uplink ? 0 : 1] + devAddr.littleEndianBytes + littleEndian(fCnt) + [
                0, UInt8(truncatingIfNeeded: message.count),
            ]
        return try cmac(key: key, b0 + message)
    }

    /// The MIC of a join request: AES-CMAC(AppKey, MHDR ‖ JoinEUI ‖ DevEUI ‖ DevNonce)[0..<4].
    public static func joinRequestMIC(appKey: [UInt8], message: [UInt8]) throws(LoRaWANError) -> [UInt8] {
        try cmac(key: appKey, message)
    }

    /// Encrypts or decrypts (the same operation) an FRMPayload: XOR with AES(key, A_i) for
    /// i = 1, 2 …, A_i = 0x01, four zero bytes, direction, DevAddr, FCnt32, 0x00, i. FPort 0
    /// takes the NwkSKey, other ports the AppSKey.
    public static func cryptFRMPayload(key: [UInt8], payload: [UInt8], devAddr: DevAddr, fCnt: UInt32, uplink: Bool)
        throws(LoRaWANError) -> [UInt8]
    {
        guard !payload.isEmpty else { return [] }
        let blockCount = (payload.count + 15) / 16
        var blocks: [UInt8] = []
        blocks.reserveCapacity(blockCount * 16)
        for index in 1...blockCount {
            blocks +=
                [0x01, 0, 0, 0, 0, uplink ? 0 : 1] + devAddr.littleEndianBytes + littleEndian(fCnt) + [
                    0, UInt8(truncatingIfNeeded: index),
                ]
        }
        let stream: [UInt8]
        do {
            stream = try AES128.encrypt(key: key, blocks: blocks)
        } catch {
            throw .key(error.message)
        }
        return zip(payload, stream).map { $0 ^ $1 }
    }

    /// Opens a join accept: the network encrypts it with AES *decryption*, so the device, and
    /// this, apply AES encryption to read it (§6.2.6). Checks its MIC with the same key.
    public static func decryptJoinAccept(_ frame: PHYPayload, appKey: [UInt8]) throws(LoRaWANError) -> (
        accept: JoinAccept, micValid: Bool
    ) {
        guard case .joinAccept(let encrypted) = frame.message else { throw .key("not a join accept") }
        let plain: [UInt8]
        do {
            plain = try AES128.encrypt(key: appKey, blocks: encrypted)
        } catch {
            throw .key(error.message)
        }
        let fields = Array(plain.dropLast(4))
        let mic = Array(plain.suffix(4))
        let accept = JoinAccept(
            joinNonce: UInt32(fields[0]) | UInt32(fields[1]) << 8 | UInt32(fields[2]) << 16,
            netID: UInt32(fields[3]) | UInt32(fields[4]) << 8 | UInt32(fields[5]) << 16,
            devAddr: DevAddr(
                UInt32(fields[6]) | UInt32(fields[7]) << 8 | UInt32(fields[8]) << 16 | UInt32(fields[9]) << 24),
            dlSettings: fields[10],
            rxDelay: fields[11],
            cfList: Array(fields.dropFirst(12))
        )
        let expected = try cmac(key: appKey, [frame.bytes[0]] + fields)
        return (accept, constantTimeEquals(expected, mic))
    }

    /// The full 32-bit frame counter for the 16 bits on air, given the last one seen: the
    /// nearest value at or above it with those low bits (LoRaWAN's MAX_FCNT_GAP of 16384 is
    /// the policy of whoever calls this).
    public static func fullFrameCounter(received: UInt16, last: UInt32?) -> UInt32 {
        guard let last else { return UInt32(received) }
        var candidate = (last & 0xFFFF_0000) | UInt32(received)
        if candidate < last {
            candidate = candidate &+ 0x1_0000
        }
        return candidate
    }

    /// Builds a data frame, as a device (or a test's simulated sensor) would: FRMPayload
    /// encrypted with the AppSKey (NwkSKey for FPort 0), MIC with the NwkSKey.
    public static func encodeDataFrame(
        mType: MType = .unconfirmedDataUp, devAddr: DevAddr, fCtrl: FCtrl = FCtrl(), fCnt: UInt32,
        fOpts: [UInt8] = [], fPort: UInt8?, payload: [UInt8], nwkSKey: [UInt8], appSKey: [UInt8]
    ) throws(LoRaWANError) -> [UInt8] {
        var control = fCtrl
        control.fOptsLength = fOpts.count
        let uplink = mType.isUplink
        var bytes: [UInt8] = [mType.rawValue << 5] + devAddr.littleEndianBytes + [control.byte]
        bytes += [UInt8(truncatingIfNeeded: fCnt), UInt8(truncatingIfNeeded: fCnt >> 8)] + fOpts
        if let fPort {
            bytes.append(fPort)
            bytes += try cryptFRMPayload(
                key: fPort == 0 ? nwkSKey : appSKey, payload: payload, devAddr: devAddr, fCnt: fCnt, uplink: uplink)
        }
        return bytes + (try dataMIC(key: nwkSKey, message: bytes, devAddr: devAddr, fCnt: fCnt, uplink: uplink))
    }

    private static func cmac(key: [UInt8], _ message: [UInt8]) throws(LoRaWANError) -> [UInt8] {
        do {
            return Array(try AESCMAC.mac(key: key, message: message).prefix(4))
        } catch {
            throw .key(error.message)
        }
    }

    private static func littleEndian(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}

extension PHYPayload {
    /// Whether a data frame's MIC checks with `nwkSKey` at the 32-bit counter `fCnt`.
    public func hasValidMIC(nwkSKey: [UInt8], fCnt: UInt32) throws(LoRaWANError) -> Bool {
        guard let frame = dataFrame else { throw .key("not a data frame") }
        return constantTimeEquals(
            try LoRaWANCrypto.dataMIC(
                key: nwkSKey, message: bytesWithoutMIC, devAddr: frame.devAddr, fCnt: fCnt, uplink: mType.isUplink), mic
        )
    }

    /// Whether a join request's MIC checks with `appKey`.
    public func hasValidJoinMIC(appKey: [UInt8]) throws(LoRaWANError) -> Bool {
        guard case .joinRequest = message else { throw .key("not a join request") }
        return constantTimeEquals(try LoRaWANCrypto.joinRequestMIC(appKey: appKey, message: bytesWithoutMIC), mic)
    }

    /// The decrypted FRMPayload of a data frame.
    public func decryptedPayload(nwkSKey: [UInt8]?, appSKey: [UInt8]?, fCnt: UInt32) throws(LoRaWANError) -> [UInt8]? {
        guard let frame = dataFrame, let port = frame.fPort else { return nil }
        guard let key = port == 0 ? nwkSKey : appSKey else { return nil }
        return try LoRaWANCrypto.cryptFRMPayload(
            key: key, payload: frame.frmPayload, devAddr: frame.devAddr, fCnt: fCnt, uplink: mType.isUplink)
    }
}
