import Wire

/// A LoRa data rate: spreading factor and bandwidth, named as Semtech's forwarder and
/// ChirpStack write it ("SF7BW125").
public struct LoRaDataRate: Hashable, Sendable, CustomStringConvertible {
    public var spreadingFactor: SpreadingFactor
    public var bandwidth: LoRaBandwidth

    public init(spreadingFactor: SpreadingFactor, bandwidth: LoRaBandwidth) {
        self.spreadingFactor = spreadingFactor
        self.bandwidth = bandwidth
    }

    /// Parses "SF7BW125", "SF12BW500", "SF10BW62.5" (case-insensitive).
    public init?(_ text: String) {
        let upper = text.uppercased()
        guard upper.hasPrefix("SF"), let bw = upper.firstRange(of: "BW") else { return nil }
        guard let sf = Int(upper[upper.index(upper.startIndex, offsetBy: 2)..<bw.lowerBound]),
            let spreadingFactor = SpreadingFactor(rawValue: sf),
            let kHz = Double(upper[bw.upperBound...]),
            let bandwidth = LoRaBandwidth(kHz: kHz)
        else { return nil }
        self.init(spreadingFactor: spreadingFactor, bandwidth: bandwidth)
    }

    public var description: String {
        let kHz = bandwidth.exactHz / 1000
        let text = kHz == kHz.rounded() ? String(Int(kHz)) : String((kHz * 10).rounded() / 10)
        return "SF\(spreadingFactor.rawValue)BW\(text)"
    }

    public func modulation(codingRate: CodingRate = .cr4_5) -> LoRaModulation {
        LoRaModulation(spreadingFactor: spreadingFactor, bandwidth: bandwidth, codingRate: codingRate)
    }
}

extension LoRaModulation {
    public var dataRate: LoRaDataRate {
        LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth)
    }
}

/// An EUI-64, such as a gateway's ID: 16 hex digits.
public struct EUI64: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(_ rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// Eight bytes, most significant first (the order GWMP headers carry them in).
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        rawValue = bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// 16 hex digits, with or without dashes or colons.
    public init?(_ text: String) {
        let digits = text.filter { $0 != "-" && $0 != ":" }
        guard digits.count == 16, let value = UInt64(digits, radix: 16) else { return nil }
        rawValue = value
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: rawValue >> (56 - 8 * $0)) }
    }

    /// Lower-case hex, as ChirpStack's topics use it.
    public var description: String {
        Hex.encode(rawValue, digits: 16)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}
