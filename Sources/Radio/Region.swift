import LoRaPHY

/// A LoRaWAN region's radio rules, from LoRaWAN Regional Parameters RP002-1.0.x (as The Things
/// Stack's `pkg/band/*_rp2_v1_0_3.go` and LoRaMac-node's `Region*.c` carry them): channels,
/// data rates, payload limits, maximum EIRP, RX2 defaults and, in EU868, the ETSI duty-cycle
/// sub-bands.
public struct Region: Sendable, Hashable {
    public enum Name: String, Sendable, CaseIterable, Hashable {
        case eu868 = "EU868"
        case us915 = "US915"
        case au915 = "AU915"
        case as923 = "AS923"
        case in865 = "IN865"
        case kr920 = "KR920"
    }

    /// What a data-rate index stands for.
    public enum DataRate: Sendable, Hashable {
        /// LoRa; `uplink` false for the US915/AU915 downlink-only rates (DR8–13).
        case lora(LoRaDataRate, uplink: Bool)
        /// FSK at this many bit/s (hotspotd's radios do not use it).
        case fsk(bitsPerSecond: Int)
        /// LR-FHSS (not used by hotspotd's radios).
        case lrFHSS
    }

    /// A part of the band with its own duty cycle and power limit (ETSI EN 300 220 in EU868).
    public struct SubBand: Sendable, Hashable {
        public var frequencies: ClosedRange<UInt32>
        /// The share of any hour a transmitter may spend on air in this sub-band.
        public var dutyCycle: Double
        public var maximumEIRP: Double
    }

    public var name: Name
    /// The frequencies a transmission may use at all.
    public var band: ClosedRange<UInt32>
    /// The channels every device uses from the start (EU868 and similar), or all 125 kHz and
    /// 500 kHz uplink channels (US915, AU915).
    public var uplinkChannels: [UInt32]
    /// US915 and AU915: the eight 500 kHz downlink channels; RX1 uses uplink channel mod 8.
    public var downlinkChannels: [UInt32]
    public var dataRates: [Int: DataRate]
    /// Maximum MACPayload size M per data rate, no dwell-time limit; the PHYPayload may be M + 5.
    public var maximumMACPayload: [Int: Int]
    /// Default maximum EIRP in dBm.
    public var maximumEIRP: Double
    public var rx2FrequencyHz: UInt32
    public var rx2DataRate: Int
    /// Parts of the band with their own duty cycle and EIRP limit (EU868's ETSI sub-bands;
    /// KR920's two power levels, with no duty cycle); empty where one limit covers the band.
    public var subBands: [SubBand]

    /// A LoRa data rate by index.
    public func loraDataRate(_ index: Int) -> LoRaDataRate? {
        if case .lora(let rate, _) = dataRates[index] { return rate }
        return nil
    }

    /// The index of a LoRa data rate, preferring the uplink table.
    public func index(of rate: LoRaDataRate, uplink: Bool = true) -> Int? {
        dataRates.filter { entry in
            if case .lora(let candidate, let isUplink) = entry.value {
                return candidate == rate && (isUplink || !uplink)
            }
            return false
        }.keys.min()
    }

    /// The longest PHYPayload this data rate may carry.
    public func maximumPHYPayload(dataRate index: Int) -> Int? {
        maximumMACPayload[index].map { $0 + 5 }
    }

    /// Whether a transmission at `bandwidth` may stay at most 400 ms on air: US915 and AU915
    /// signals narrower than 250 kHz (47 CFR 15.247(a)(1)(i); ACMA LIPD Class Licence 2015,
    /// item 55), and AS923's where its DownlinkDwellTime applies (RP002-1.0.4 §2.8.3).
    public func dwellTimeApplies(to bandwidth: LoRaBandwidth, as923DwellTime: Bool = true) -> Bool {
        switch name {
        case .us915, .au915: bandwidth.exactHz < 250_000
        case .as923: as923DwellTime
        default: false
        }
    }

    /// The longest a transmission may last where a dwell time applies.
    public static let dwellTimeNanoseconds: Int64 = 400_000_000

    /// The slowest LoRa uplink data rate whose payload limit carries `size` bytes of PHYPayload,
    /// and whose time on air for them stays within the region's dwell time where one applies:
    /// the beacon's data rate for a 52-byte proof-of-coverage beacon.
    public func slowestUplinkDataRate(carrying size: Int) -> (index: Int, rate: LoRaDataRate)? {
        let candidates: [(Int, LoRaDataRate)] = dataRates.compactMap { entry in
            guard case .lora(let rate, true) = entry.value, let limit = maximumPHYPayload(dataRate: entry.key),
                limit >= size
            else { return nil }
            if dwellTimeApplies(to: rate.bandwidth),
                LoRaAirtime(modulation: rate.modulation(), payloadLength: size).nanoseconds > Self.dwellTimeNanoseconds
            {
                return nil
            }
            return (entry.key, rate)
        }
        return candidates.min { lhs, rhs in
            LoRaAirtime(modulation: lhs.1.modulation(), payloadLength: size).nanoseconds
                > LoRaAirtime(modulation: rhs.1.modulation(), payloadLength: size).nanoseconds
        }
    }

    /// The sub-band that holds `frequencyHz`, in a region that has them.
    public func subBand(containing frequencyHz: UInt32) -> SubBand? {
        subBands.first { $0.frequencies.contains(frequencyHz) }
    }

    /// Whether a transmitter may use `frequencyHz`: inside the band and, where sub-bands
    /// apply, inside one of them (EU868 has gaps between them).
    public func allows(frequencyHz: UInt32) -> Bool {
        guard band.contains(frequencyHz) else { return false }
        return subBands.isEmpty || subBand(containing: frequencyHz) != nil
    }

    /// The EIRP limit at `frequencyHz`: the sub-band's, or the region's default.
    public func maximumEIRP(at frequencyHz: UInt32) -> Double {
        subBand(containing: frequencyHz)?.maximumEIRP ?? maximumEIRP
    }

    public static func named(_ name: Name) -> Region {
        switch name {
        case .eu868: eu868
        case .us915: us915
        case .au915: au915
        case .as923: as923
        case .in865: in865
        case .kr920: kr920
        }
    }

    /// Parses "EU868", "eu868", "US915" …
    public static func named(_ text: String) -> Region? {
        Name(rawValue: text.uppercased()).map(named)
    }
}

extension Region {
    private static func lora(_ sf: SpreadingFactor, _ bw: LoRaBandwidth, uplink: Bool = true) -> DataRate {
        .lora(LoRaDataRate(spreadingFactor: sf, bandwidth: bw), uplink: uplink)
    }

    /// DR0–5: SF12 to SF7 at 125 kHz, common to EU868, AS923, IN865, KR920 and AU915.
    private static let sf12ToSF7: [Int: DataRate] = [
        0: lora(.sf12, .khz125), 1: lora(.sf11, .khz125), 2: lora(.sf10, .khz125),
        3: lora(.sf9, .khz125), 4: lora(.sf8, .khz125), 5: lora(.sf7, .khz125),
    ]

    /// US915 and AU915 DR8–13: SF12 to SF7 at 500 kHz, downlink only.
    private static let downlink500: [Int: DataRate] = [
        8: lora(.sf12, .khz500, uplink: false), 9: lora(.sf11, .khz500, uplink: false),
        10: lora(.sf10, .khz500, uplink: false), 11: lora(.sf9, .khz500, uplink: false),
        12: lora(.sf8, .khz500, uplink: false), 13: lora(.sf7, .khz500, uplink: false),
    ]

    /// ETSI EN 300 220-2 bands K, L, M, N, P, R; the EIRP limit is the ERP limit + 2.15 dB.
    private static let etsiSubBands: [SubBand] = [
        SubBand(frequencies: 863_000_000...865_000_000, dutyCycle: 0.001, maximumEIRP: 16.15),
        SubBand(frequencies: 865_000_000...868_000_000, dutyCycle: 0.01, maximumEIRP: 16.15),
        SubBand(frequencies: 868_000_000...868_600_000, dutyCycle: 0.01, maximumEIRP: 16.15),
        SubBand(frequencies: 868_700_000...869_200_000, dutyCycle: 0.001, maximumEIRP: 16.15),
        SubBand(frequencies: 869_400_000...869_650_000, dutyCycle: 0.1, maximumEIRP: 29.15),
        SubBand(frequencies: 869_700_000...870_000_000, dutyCycle: 0.01, maximumEIRP: 16.15),
    ]

    public static let eu868 = Region(
        name: .eu868,
        band: 863_000_000...870_000_000,
        uplinkChannels: [868_100_000, 868_300_000, 868_500_000],
        downlinkChannels: [],
        dataRates: sf12ToSF7.merging([
            6: lora(.sf7, .khz250), 7: .fsk(bitsPerSecond: 50_000), 8: .lrFHSS, 9: .lrFHSS, 10: .lrFHSS, 11: .lrFHSS,
        ]) { $1 },
        maximumMACPayload: [0: 59, 1: 59, 2: 59, 3: 123, 4: 250, 5: 250, 6: 250, 7: 250],
        maximumEIRP: 16,
        rx2FrequencyHz: 869_525_000,
        rx2DataRate: 0,
        subBands: etsiSubBands
    )

    public static let us915 = Region(
        name: .us915,
        band: 902_000_000...928_000_000,
        uplinkChannels: (0..<64).map { 902_300_000 + 200_000 * UInt32($0) }
            + (0..<8).map { 903_000_000 + 1_600_000 * UInt32($0) },
        downlinkChannels: (0..<8).map { 923_300_000 + 600_000 * UInt32($0) },
        dataRates: [
            0: lora(.sf10, .khz125), 1: lora(.sf9, .khz125), 2: lora(.sf8, .khz125), 3: lora(.sf7, .khz125),
            4: lora(.sf8, .khz500), 5: .lrFHSS, 6: .lrFHSS,
        ]
        .merging(downlink500) { $1 },
        maximumMACPayload: [0: 19, 1: 61, 2: 133, 3: 250, 4: 250, 8: 61, 9: 137, 10: 250, 11: 250, 12: 250, 13: 250],
        maximumEIRP: 30,
        rx2FrequencyHz: 923_300_000,
        rx2DataRate: 8,
        subBands: []
    )

    public static let au915 = Region(
        name: .au915,
        band: 915_000_000...928_000_000,
        uplinkChannels: (0..<64).map { 915_200_000 + 200_000 * UInt32($0) }
            + (0..<8).map { 915_900_000 + 1_600_000 * UInt32($0) },
        downlinkChannels: (0..<8).map { 923_300_000 + 600_000 * UInt32($0) },
        dataRates: sf12ToSF7.merging([6: lora(.sf8, .khz500), 7: .lrFHSS]) { $1 }.merging(downlink500) { $1 },
        maximumMACPayload: [
            0: 59, 1: 59, 2: 59, 3: 123, 4: 250, 5: 250, 6: 250, 8: 61, 9: 137, 10: 250, 11: 250, 12: 250, 13: 250,
        ],
        maximumEIRP: 30,
        rx2FrequencyHz: 923_300_000,
        rx2DataRate: 8,
        subBands: []
    )

    /// AS923-1 (RP002-1.0.4 payload sizes).
    public static let as923 = Region(
        name: .as923,
        band: 915_000_000...928_000_000,
        uplinkChannels: [923_200_000, 923_400_000],
        downlinkChannels: [],
        dataRates: sf12ToSF7.merging([6: lora(.sf7, .khz250), 7: .fsk(bitsPerSecond: 50_000)]) { $1 },
        maximumMACPayload: [0: 59, 1: 59, 2: 123, 3: 123, 4: 250, 5: 250, 6: 250, 7: 250],
        maximumEIRP: 16,
        rx2FrequencyHz: 923_200_000,
        rx2DataRate: 2,
        subBands: []
    )

    public static let in865 = Region(
        name: .in865,
        band: 865_000_000...867_000_000,
        uplinkChannels: [865_062_500, 865_402_500, 865_985_000],
        downlinkChannels: [],
        dataRates: sf12ToSF7.merging([7: .fsk(bitsPerSecond: 50_000)]) { $1 },
        maximumMACPayload: [0: 59, 1: 59, 2: 59, 3: 123, 4: 250, 5: 250, 7: 250],
        maximumEIRP: 30,
        rx2FrequencyHz: 866_550_000,
        rx2DataRate: 2,
        subBands: []
    )

    public static let kr920 = Region(
        name: .kr920,
        // Channels 920.9 to 923.3 MHz, each 125 kHz wide (RP002-1.0.4 §2.11): the band's edges
        // are half a channel further out. 10 dBm EIRP up to 921.9 MHz, 14 dBm from 922.1 MHz
        // (LoRaMac-node's KR920 limits); no duty cycle, but listen-before-talk.
        band: 920_800_000...923_400_000,
        uplinkChannels: [922_100_000, 922_300_000, 922_500_000],
        downlinkChannels: [],
        dataRates: sf12ToSF7,
        maximumMACPayload: [0: 59, 1: 59, 2: 59, 3: 123, 4: 250, 5: 250],
        maximumEIRP: 14,
        rx2FrequencyHz: 921_900_000,
        rx2DataRate: 0,
        subBands: [
            SubBand(frequencies: 920_800_000...922_000_000, dutyCycle: 1, maximumEIRP: 10),
            SubBand(frequencies: 922_000_000...923_400_000, dutyCycle: 1, maximumEIRP: 14),
        ]
    )
}
