import ChirpStack
import Clocks
import Cryptography
import LoRaPHY
import LoRaWAN
import Messages
import Radio
import Store
import TestSupport

@testable import Credits

#if canImport(Glibc)
    import Glibc
#endif

let gatewayID = "0016c001ff10a235"
let topics = Topics(prefix: "eu868", gatewayID: gatewayID)
let authorityKey = try! Ed25519PrivateKey(seed: [UInt8](repeating: 0x42, count: 32))
let nwkSKey = [UInt8](repeating: 0x11, count: 16)
let appSKey = [UInt8](repeating: 0x22, count: 16)
let sensor = DevAddr(0x2601_1BDA)
/// The gateway's identity: pair commands seal NwkSKeys to its sealing key.
let gatewayKey = try! Ed25519PrivateKey(seed: [UInt8](repeating: 0x47, count: 32))

func temporaryStore() throws -> Store {
    var template = Array("/tmp/hotspotd-credits-XXXXXX".utf8CString)
    let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    return try Store.open(directory: directory)
}

/// A clock tests move by hand, in nanoseconds since the epoch.
final class TestClock: @unchecked Sendable {
    var nanoseconds: Int64 = 1_790_000_000_000_000_000
    var seconds: UInt64 { UInt64(nanoseconds / 1_000_000_000) }
}

func signed(
    _ command: Command, gateway: String = gatewayID, key: Ed25519PrivateKey = authorityKey, expiresAt: UInt64,
    nonce: [UInt8] = secureRandomBytes(16), sealedTo: [UInt8]? = gatewayKey.sealingKey.publicKey
) throws -> [UInt8] {
    try CommandSigner.sign(
        command, gatewayID: gateway, key: key, expiresAt: expiresAt, nonce: nonce, sealingKey: sealedTo)
}

func uplink(
    fCnt: UInt32, payload: [UInt8] = [1, 2, 3], devAddr: DevAddr = sensor, key: [UInt8] = nwkSKey, at time: Int64? = nil
) throws -> RadioFrame {
    let bytes = try LoRaWANCrypto.encodeDataFrame(
        devAddr: devAddr, fCnt: fCnt, fPort: 1, payload: payload, nwkSKey: key, appSKey: appSKey)
    return RadioFrame(
        payload: bytes, frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125),
        codingRate: .cr4_5, rssiDBm: -70, snrDB: 8, crc: .ok, timestamp: 1000, receivedAt: time)
}
