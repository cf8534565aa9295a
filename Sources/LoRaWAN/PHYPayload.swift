import LoRaPHY
import Wire

/// A device address: 32 bits, printed most significant byte first ("26011BDA"); sent on air
/// least significant byte first.
public struct DevAddr: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(_ rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Eight hex digits as printed.
    public init?(_ text: String) {
        guard text.count == 8, let value = UInt32(text, radix: 16) else { return nil }
        rawValue = value
    }

    /// The four bytes in air order (little-endian).
    public var littleEndianBytes: [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> (8 * $0)) }
    }

    public var description: String {
        Hex.encode(rawValue, digits: 8, uppercase: true)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The message type of the MHDR (bits 7–5).
public enum MType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case joinRequest = 0
    case joinAccept = 1
    case unconfirmedDataUp = 2
    case unconfirmedDataDown = 3
    case confirmedDataUp = 4
    case confirmedDataDown = 5
    case rejoinRequest = 6
    case proprietary = 7

    public var isUplink: Bool {
        switch self {
        case .joinRequest, .unconfirmedDataUp, .confirmedDataUp, .rejoinRequest, .proprietary: true
        case .joinAccept, .unconfirmedDataDown, .confirmedDataDown: false
        }
    }

    public var description: String {
        switch self {
        case .joinRequest: "JoinRequest"
        case .joinAccept: "JoinAccept"
        case .unconfirmedDataUp: "UnconfirmedDataUp"
        case .unconfirmedDataDown: "UnconfirmedDataDown"
        case .confirmedDataUp: "ConfirmedDataUp"
        case .confirmedDataDown: "ConfirmedDataDown"
        case .rejoinRequest: "RejoinRequest"
        case .proprietary: "Proprietary"
        }
    }
}

/// Why bytes are not a LoRaWAN frame hotspotd understands.
public enum LoRaWANError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case tooShort(MType, Int, minimum: Int)
    case wrongLength(MType, Int, expected: [Int])
    case unsupportedMajor(UInt8)
    case fOptsOverrun(Int)
    case key(String)

    public var description: String {
        switch self {
        case .empty: "no bytes"
        case .tooShort(let type, let count, let minimum):
            "\(type) of \(count) bytes is shorter than its minimum of \(minimum)"
        case .wrongLength(let type, let count, let expected):
            "\(type) of \(count) bytes (expected \(expected.map(String.init).joined(separator: " or ")))"
        case .unsupportedMajor(let major): "LoRaWAN major version \(major) (only R1, 0, is defined)"
        case .fOptsOverrun(let length): "FOptsLen \(length) runs past the end of the frame"
        case .key(let message): message
        }
    }
}

/// FCtrl of a data frame.
public struct FCtrl: Hashable, Sendable {
    public var adr: Bool
    /// ADRACKReq on uplinks (RFU on downlinks).
    public var adrAckReq: Bool
    public var ack: Bool
    /// FPending on downlinks, ClassB on uplinks.
    public var fPending: Bool
    public var fOptsLength: Int

    public init(
        adr: Bool = false, adrAckReq: Bool = false, ack: Bool = false, fPending: Bool = false, fOptsLength: Int = 0
    ) {
        self.adr = adr
        self.adrAckReq = adrAckReq
        self.ack = ack
        self.fPending = fPending
        self.fOptsLength = fOptsLength
    }

    init(byte: UInt8) {
        adr = byte & 0x80 != 0
        adrAckReq = byte & 0x40 != 0
        ack = byte & 0x20 != 0
        fPending = byte & 0x10 != 0
        fOptsLength = Int(byte & 0x0F)
    }

    var byte: UInt8 {
        (adr ? 0x80 : 0) | (adrAckReq ? 0x40 : 0) | (ack ? 0x20 : 0) | (fPending ? 0x10 : 0) | UInt8(fOptsLength & 0x0F)
    }
}

/// The MACPayload of a data frame: FHDR, FPort, FRMPayload.
public struct DataFrame: Hashable, Sendable {
    public var devAddr: DevAddr
    public var fCtrl: FCtrl
    /// The 16 bits of the frame counter that travel on air.
    public var fCnt: UInt16
    public var fOpts: [UInt8]
    public var fPort: UInt8?
    /// Encrypted, as on air.
    public var frmPayload: [UInt8]
}

/// A join request (LoRaWAN 1.0.x).
public struct JoinRequest: Hashable, Sendable {
    public var joinEUI: EUI64
    public var devEUI: EUI64
    public var devNonce: UInt16
}

/// A join accept, once decrypted.
public struct JoinAccept: Hashable, Sendable {
    public var joinNonce: UInt32
    public var netID: UInt32
    public var devAddr: DevAddr
    public var dlSettings: UInt8
    public var rxDelay: UInt8
    public var cfList: [UInt8]
}

/// A LoRaWAN 1.0.x PHYPayload: MHDR, the message, and the MIC.
public struct PHYPayload: Hashable, Sendable {
    public enum Message: Hashable, Sendable {
        case joinRequest(JoinRequest)
        /// Encrypted on air; `LoRaWANCrypto.decryptJoinAccept` opens it with the AppKey.
        case joinAccept(encrypted: [UInt8])
        case data(DataFrame)
        case rejoinRequest([UInt8])
        /// Everything after the MHDR; a proprietary frame has no MIC of LoRaWAN's.
        case proprietary([UInt8])
    }

    /// The frame as received.
    public let bytes: [UInt8]
    public var mType: MType
    public var major: UInt8
    public var message: Message
    /// Four bytes, or empty for a proprietary frame.
    public var mic: [UInt8]

    public static func decode(_ bytes: [UInt8]) throws(LoRaWANError) -> PHYPayload {
        guard let mhdr = bytes.first else { throw .empty }
        let mType = MType(rawValue: mhdr >> 5)!
        let major = mhdr & 0x03
        if mType == .proprietary {
            return PHYPayload(
                bytes: bytes, mType: mType, major: major, message: .proprietary(Array(bytes.dropFirst())), mic: [])
        }
        guard major == 0 else { throw .unsupportedMajor(major) }
        switch mType {
        case .joinRequest:
            guard bytes.count == 23 else { throw .wrongLength(mType, bytes.count, expected: [23]) }
            let request = JoinRequest(
                joinEUI: EUI64(bytes: bytes[1..<9].reversed())!,
                devEUI: EUI64(bytes: bytes[9..<17].reversed())!,
                devNonce: UInt16(bytes[17]) | UInt16(bytes[18]) << 8
            )
            return PHYPayload(
                bytes: bytes, mType: mType, major: major, message: .joinRequest(request), mic: Array(bytes[19..<23]))
        case .joinAccept:
            guard bytes.count == 17 || bytes.count == 33 else {
                throw .wrongLength(mType, bytes.count, expected: [17, 33])
            }
            return PHYPayload(
                bytes: bytes, mType: mType, major: major, message: .joinAccept(encrypted: Array(bytes.dropFirst())),
                mic: [])
        case .rejoinRequest:
            guard bytes.count >= 5 else { throw .tooShort(mType, bytes.count, minimum: 5) }
            return PHYPayload(
                bytes: bytes, mType: mType, major: major, message: .rejoinRequest(Array(bytes[1..<(bytes.count - 4)])),
                mic: Array(bytes.suffix(4)))
        default:
            // MHDR 1, DevAddr 4, FCtrl 1, FCnt 2, MIC 4.
            guard bytes.count >= 12 else { throw .tooShort(mType, bytes.count, minimum: 12) }
            let devAddr = DevAddr(
                UInt32(bytes[1]) | UInt32(bytes[2]) << 8 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 24)
            let fCtrl = FCtrl(byte: bytes[5])
            let fCnt = UInt16(bytes[6]) | UInt16(bytes[7]) << 8
            let macEnd = bytes.count - 4
            let optionsEnd = 8 + fCtrl.fOptsLength
            guard optionsEnd <= macEnd else { throw .fOptsOverrun(fCtrl.fOptsLength) }
            let fOpts = Array(bytes[8..<optionsEnd])
            let fPort: UInt8? = optionsEnd < macEnd ? bytes[optionsEnd] : nil
            let frmPayload = fPort == nil ? [] : Array(bytes[(optionsEnd + 1)..<macEnd])
            let frame = DataFrame(
                devAddr: devAddr, fCtrl: fCtrl, fCnt: fCnt, fOpts: fOpts, fPort: fPort, frmPayload: frmPayload)
            return PHYPayload(
                bytes: bytes, mType: mType, major: major, message: .data(frame), mic: Array(bytes.suffix(4)))
        }
    }

    /// The data frame, when this is one.
    public var dataFrame: DataFrame? {
        if case .data(let frame) = message { return frame }
        return nil
    }

    /// The bytes the MIC is computed over: everything but the MIC.
    public var bytesWithoutMIC: [UInt8] {
        Array(bytes.prefix(bytes.count - mic.count))
    }
}
