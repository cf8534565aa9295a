/// LoRa spreading factor, SF5 to SF12 (SF5 and SF6 exist on the SX126x only).
public struct SpreadingFactor: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int

    public init?(rawValue: Int) {
        guard (5...12).contains(rawValue) else { return nil }
        self.rawValue = rawValue
    }

    public static let sf5 = SpreadingFactor(rawValue: 5)!
    public static let sf6 = SpreadingFactor(rawValue: 6)!
    public static let sf7 = SpreadingFactor(rawValue: 7)!
    public static let sf8 = SpreadingFactor(rawValue: 8)!
    public static let sf9 = SpreadingFactor(rawValue: 9)!
    public static let sf10 = SpreadingFactor(rawValue: 10)!
    public static let sf11 = SpreadingFactor(rawValue: 11)!
    public static let sf12 = SpreadingFactor(rawValue: 12)!

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "SF\(rawValue)" }
}

/// LoRa signal bandwidth. Raw values are the register codes' nominal frequencies in Hz;
/// `exactHz` gives the true value (7.8 kHz is 500 kHz / 64 = 7812.5 Hz).
public enum LoRaBandwidth: Int, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case khz7_8 = 7_800
    case khz10_4 = 10_400
    case khz15_6 = 15_600
    case khz20_8 = 20_800
    case khz31_25 = 31_250
    case khz41_7 = 41_700
    case khz62_5 = 62_500
    case khz125 = 125_000
    case khz250 = 250_000
    case khz500 = 500_000

    /// The bandwidth in Hz, exactly: the narrow ones are 500 kHz divided by a power of two or three.
    public var exactHz: Double {
        switch self {
        case .khz7_8: 500_000.0 / 64
        case .khz10_4: 500_000.0 / 48
        case .khz15_6: 500_000.0 / 32
        case .khz20_8: 500_000.0 / 24
        case .khz31_25: 31_250
        case .khz41_7: 500_000.0 / 12
        case .khz62_5: 62_500
        case .khz125: 125_000
        case .khz250: 250_000
        case .khz500: 500_000
        }
    }

    /// The bandwidth for a value in Hz, accepting the nominal and the exact forms (7800, 7812 …).
    public init?(hz: Int) {
        guard let match = Self.allCases.first(where: { abs(Double(hz) - $0.exactHz) < 60 }) else { return nil }
        self = match
    }

    /// The bandwidth for a value in kHz as people write it (125, 250, 500, 62.5, 7.8 …).
    public init?(kHz: Double) {
        guard let match = Self.allCases.first(where: { abs(kHz * 1000 - $0.exactHz) < 60 }) else { return nil }
        self = match
    }

    public var description: String {
        let khz = exactHz / 1000
        return khz == khz.rounded() ? "\(Int(khz)) kHz" : "\((khz * 10).rounded() / 10) kHz"
    }
}

/// LoRa forward-error-correction coding rate, 4/5 to 4/8.
public enum CodingRate: Int, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case cr4_5 = 1
    case cr4_6 = 2
    case cr4_7 = 3
    case cr4_8 = 4

    /// Parses "4/5" … "4/8".
    public init?(_ text: String) {
        guard let match = Self.allCases.first(where: { $0.description == text }) else { return nil }
        self = match
    }

    public var description: String { "4/\(rawValue + 4)" }
}

/// The parameters that decide whether two LoRa radios can hear each other, besides frequency.
public struct LoRaModulation: Hashable, Sendable, CustomStringConvertible {
    public var spreadingFactor: SpreadingFactor
    public var bandwidth: LoRaBandwidth
    public var codingRate: CodingRate

    public init(spreadingFactor: SpreadingFactor, bandwidth: LoRaBandwidth, codingRate: CodingRate = .cr4_5) {
        self.spreadingFactor = spreadingFactor
        self.bandwidth = bandwidth
        self.codingRate = codingRate
    }

    /// ChirpStack's and Semtech's data-rate notation, e.g. "SF7BW125".
    public var dataRateName: String { "SF\(spreadingFactor.rawValue)BW\(Int(bandwidth.exactHz / 1000))" }

    public var description: String { "\(dataRateName) CR \(codingRate)" }
}

/// The LoRa sync word as the SX127x holds it in one byte (0x34 for public networks such as
/// LoRaWAN, 0x12 for private ones). The SX126x stores it as two bytes: 0x34 becomes 0x3444.
public struct LoRaSyncWord: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public static let `public` = LoRaSyncWord(rawValue: 0x34)
    public static let `private` = LoRaSyncWord(rawValue: 0x12)

    /// The SX126x register form: each nibble of the byte followed by 0x4.
    public var sx126xRegisterValue: UInt16 {
        UInt16(rawValue & 0xF0 | 0x04) << 8 | UInt16((rawValue & 0x0F) << 4 | 0x04)
    }

    /// The one-byte form of an SX126x two-byte sync word.
    public init(sx126xRegisterValue value: UInt16) {
        rawValue = UInt8((value >> 8) & 0xF0) | UInt8((value >> 4) & 0x0F)
    }

    public var description: String { "0x" + String(rawValue, radix: 16, uppercase: true) }
}
