import LoRaPHY

/// A LoRaWAN region's radio rules, from LoRaWAN Regional Parameters RP002-1.0.x (as The Things
/// Stack's `pkg/band/*_rp2_v1_0_3.go`/`_v1_0_4.go`, LoRaMac-node's `Region*.c` and ChirpStack's
/// `lrwn/src/region/*.rs` carry them): channels, data rates, payload limits, maximum EIRP, RX1
/// and RX2 rules, duty-cycle sub-bands; and the channel plan Helium's network gives each region
/// (`helium/lorawan-h3` `region_params/*.json`), which proof-of-coverage beacons use.
public struct Region: Sendable, Hashable {
    /// Every region Helium serves. The raw value is the name in hotspotd.toml and, in lower
    /// case, the default MQTT topic prefix (ChirpStack's region ids: `as923_2`, `eu433` …).
    public enum Name: String, Sendable, CaseIterable, Hashable {
        case eu868 = "EU868"
        case us915 = "US915"
        case au915 = "AU915"
        /// AS923-1 (`AS923-1` and `AS923_1` are read as this too).
        case as923 = "AS923"
        /// Helium's AS923-1B: AS923-1's rules, with Helium's channels 922.0 to 923.4 MHz.
        case as923_1b = "AS923_1B"
        case as923_2 = "AS923_2"
        case as923_3 = "AS923_3"
        case as923_4 = "AS923_4"
        case in865 = "IN865"
        case kr920 = "KR920"
        case ru864 = "RU864"
        case cn470 = "CN470"
        case eu433 = "EU433"

        /// One of the AS923 groups, whose dwell time and listen-before-talk a country chooses.
        public var isAS923: Bool {
            switch self {
            case .as923, .as923_1b, .as923_2, .as923_3, .as923_4: true
            default: false
            }
        }

        /// As people write it: `AS923-1`, `AS923-1B`, `AS923-2` …, the others as they are.
        public var displayName: String {
            switch self {
            case .as923: "AS923-1"
            case .as923_1b: "AS923-1B"
            case .as923_2, .as923_3, .as923_4: String(rawValue.map { $0 == "_" ? "-" : $0 })
            default: rawValue
            }
        }
    }

    /// How a downlink's RX1 data rate follows from the uplink's and the RX1DROffset
    /// (RP002-1.0.4, each region's "RX1 window" table).
    public enum RX1DataRateRule: Sendable, Hashable {
        /// max(uplink − offset, 0), offsets 0 to 5 (EU868, KR920, RU864, EU433, CN470).
        case subtracting
        /// US915: max(8, min(13, 10 + uplink − offset)), offsets 0 to 3.
        case us915
        /// AU915: max(8, min(13, 8 + uplink − offset)), offsets 0 to 5.
        case au915
        /// AS923: offsets 0 to 7, 6 and 7 meaning −1 and −2; at least DR2 where the downlink
        /// dwell time applies, at most DR7 (LoRaMac-node's RegionAS923 table, The Things Stack's
        /// RP002 bands; ChirpStack keeps the older formula's cap of DR5).
        case as923
        /// IN865: offsets 0 to 7, 6 and 7 meaning −1 and −2; at most DR5 (DR7 for DR7).
        case in865
    }

    /// A region's plan on Helium's network, as `helium/lorawan-h3` `region_params/*.json` has
    /// it (the chain variables `region_<name>_params`): the channels, in order, and the
    /// spreading factors with the largest packet each may carry. A proof-of-coverage beacon
    /// goes on one of these channels, at the first spreading factor that carries its data.
    public struct HeliumPlan: Sendable, Hashable {
        public struct Spreading: Sendable, Hashable {
            public var spreadingFactor: SpreadingFactor
            public var maximumPacketSize: Int
        }

        public var channels: [UInt32]
        public var bandwidth: LoRaBandwidth
        /// dBm, as the plan stores it in tenths.
        public var maximumEIRP: Double
        public var spreading: [Spreading]

        /// The data rate for `size` bytes: the first spreading factor, in the plan's order,
        /// whose largest packet holds them (gateway-rs `select_datarate`).
        public func dataRate(carrying size: Int) -> LoRaDataRate? {
            spreading.first { $0.maximumPacketSize >= size }.map {
                LoRaDataRate(spreadingFactor: $0.spreadingFactor, bandwidth: bandwidth)
            }
        }
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
    public var rx1DataRateRule: RX1DataRateRule
    /// AS923: the maximum MACPayload per data rate where the dwell time applies (RP002-1.0.4
    /// Table 2.8.6, UplinkDwellTime = 1); empty elsewhere.
    public var dwellLimitedMACPayload: [Int: Int] = [:]
    public var helium: HeliumPlan

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
        case _ where name.isAS923: as923DwellTime
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

    /// Whether a signal `bandwidthHz` wide centred on `frequencyHz` lies wholly inside the band
    /// and, where sub-bands apply, inside one of them (ERC Recommendation 70-03 Annex 1, ETSI
    /// EN 300 220-2: what a gateway may transmit), or, with `inOneSubBand` false, with its centre
    /// in one (what a channel plan may listen on).
    public func holds(frequencyHz: UInt32, bandwidthHz: Double, inOneSubBand: Bool = true) -> Bool {
        let half = UInt32(bandwidthHz / 2)
        guard frequencyHz > half, band.contains(frequencyHz - half), band.contains(frequencyHz &+ half) else {
            return false
        }
        guard !subBands.isEmpty else { return true }
        return inOneSubBand
            ? subBandIndex(frequencyHz: frequencyHz, bandwidthHz: bandwidthHz) != nil
            : subBand(containing: frequencyHz) != nil
    }

    /// The sub-band holding the whole signal (sub-bands share their edges: a signal whose edge
    /// is one belongs to the sub-band it lies in), or nil.
    public func subBandIndex(frequencyHz: UInt32, bandwidthHz: Double) -> Int? {
        let half = UInt32(bandwidthHz / 2)
        guard frequencyHz > half else { return nil }
        let (low, high) = (frequencyHz - half, frequencyHz &+ half)
        return subBands.firstIndex { $0.frequencies.contains(low) && $0.frequencies.contains(high) }
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
        case .as923_1b: as923_1b
        case .as923_2: as923_2
        case .as923_3: as923_3
        case .as923_4: as923_4
        case .in865: in865
        case .kr920: kr920
        case .ru864: ru864
        case .cn470: cn470
        case .eu433: eu433
        }
    }

    /// Every region's name as people write it, for messages: "EU868, US915, … EU433".
    public static var names: String {
        Name.allCases.map(\.displayName).joined(separator: ", ")
    }

    /// Parses "EU868", "eu868", "AS923-2", "as923_2", "AS923-1" …
    public static func named(_ text: String) -> Region? {
        let normal = String(text.uppercased().map { $0 == "-" ? "_" : $0 })
        return Name(rawValue: normal == "AS923_1" ? "AS923" : normal).map(named)
    }

    /// The RX1 data rate of a downlink answering an uplink at `uplink` with `offset`
    /// (RX1DROffset), or nil where the region allows no such offset or data rate.
    public func rx1DataRate(uplink: Int, offset: Int, downlinkDwellTime: Bool = true) -> Int? {
        switch dataRates[uplink] {
        case .lora(_, true)?, .fsk?: break
        default: return nil
        }
        let effective = [0, 1, 2, 3, 4, 5, -1, -2]
        switch rx1DataRateRule {
        case .subtracting:
            guard (0...5).contains(offset) else { return nil }
            return max(uplink - offset, 0)
        case .us915:
            guard (0...3).contains(offset) else { return nil }
            return max(8, min(13, 10 + uplink - offset))
        case .au915:
            guard (0...5).contains(offset) else { return nil }
            return max(8, min(13, 8 + uplink - offset))
        case .as923:
            guard (0...7).contains(offset) else { return nil }
            return min(7, max(downlinkDwellTime ? 2 : 0, uplink - effective[offset]))
        case .in865:
            guard (0...7).contains(offset) else { return nil }
            return min(uplink == 7 ? 7 : 5, max(0, uplink - effective[offset]))
        }
    }

    /// The RX1 frequency of a downlink answering an uplink on `uplinkHz`: the same frequency,
    /// or where the region has downlink channels of its own (US915, AU915: 8; CN470: 48) the
    /// uplink channel's number modulo their count. Nil for an uplink off the region's channels
    /// where that rule needs the channel's number.
    public func rx1Frequency(uplinkHz: UInt32) -> UInt32? {
        guard !downlinkChannels.isEmpty else { return uplinkHz }
        guard let channel = uplinkChannels.firstIndex(of: uplinkHz) else { return nil }
        return downlinkChannels[channel % downlinkChannels.count]
    }

    /// The largest PHYPayload at data rate `index` where the dwell time applies (AS923),
    /// or as `maximumPHYPayload` elsewhere.
    public func maximumPHYPayload(dataRate index: Int, dwellTimeLimited: Bool) -> Int? {
        guard dwellTimeLimited, name.isAS923 else { return maximumPHYPayload(dataRate: index) }
        return dwellLimitedMACPayload[index].map { $0 + 5 }
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

    private static func spreading(_ pairs: [(SpreadingFactor, Int)]) -> [HeliumPlan.Spreading] {
        pairs.map { HeliumPlan.Spreading(spreadingFactor: $0.0, maximumPacketSize: $0.1) }
    }

    /// Helium's spreading lists: US915's, EU868's, and the one every other region has.
    private static let heliumUS = spreading([(.sf10, 25), (.sf9, 67), (.sf8, 139), (.sf7, 256)])
    private static let heliumEU = spreading([(.sf12, 65), (.sf9, 129), (.sf8, 238)])
    private static let heliumStandard = spreading([
        (.sf12, 25), (.sf11, 25), (.sf10, 25), (.sf9, 67), (.sf8, 139), (.sf7, 256),
    ])

    /// `count` channels 200 kHz apart from `first`.
    private static func channels(from first: UInt32, count: Int, spacing: UInt32 = 200_000) -> [UInt32] {
        (0..<count).map { first + spacing * UInt32($0) }
    }

    private static func helium(_ channels: [UInt32], eirp: Double, _ spreading: [HeliumPlan.Spreading])
        -> HeliumPlan
    {
        HeliumPlan(channels: channels, bandwidth: .khz125, maximumEIRP: eirp, spreading: spreading)
    }

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
        subBands: etsiSubBands,
        rx1DataRateRule: .subtracting,
        helium: helium(
            [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000, 868_100_000, 868_300_000, 868_500_000],
            eirp: 16.1, heliumEU)
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
        subBands: [],
        rx1DataRateRule: .us915,
        helium: helium(channels(from: 903_900_000, count: 8), eirp: 36, heliumUS)
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
        subBands: [],
        rx1DataRateRule: .au915,
        helium: helium(channels(from: 916_800_000, count: 8), eirp: 30, heliumStandard)
    )

    /// AS923 (RP002-1.0.4 §2.8): the default channels 923.2 and 923.4 MHz and RX2 923.2 MHz at
    /// DR2, moved by the group's offset (AS923-2 −1.8 MHz, AS923-3 −6.6 MHz, AS923-4 −5.9 MHz);
    /// the band each group's countries allow (LoRa Basics Modem's `region_as_923_defs.h`).
    private static func as923Group(
        _ name: Name, offset: Int64, band: ClosedRange<UInt32>, helium heliumChannels: [UInt32]
    ) -> Region {
        let shift = { (frequency: UInt32) in UInt32(Int64(frequency) + offset) }
        return Region(
            name: name,
            band: band,
            uplinkChannels: [shift(923_200_000), shift(923_400_000)],
            downlinkChannels: [],
            dataRates: sf12ToSF7.merging([6: lora(.sf7, .khz250), 7: .fsk(bitsPerSecond: 50_000)]) { $1 },
            maximumMACPayload: [0: 59, 1: 59, 2: 123, 3: 123, 4: 250, 5: 250, 6: 250, 7: 250],
            maximumEIRP: 16,
            rx2FrequencyHz: shift(923_200_000),
            rx2DataRate: 2,
            subBands: [],
            rx1DataRateRule: .as923,
            dwellLimitedMACPayload: [2: 19, 3: 61, 4: 133, 5: 250, 6: 250, 7: 250],
            helium: helium(heliumChannels, eirp: 16, heliumStandard)
        )
    }

    /// AS923-1 (RP002-1.0.4 payload sizes).
    public static let as923 = as923Group(
        .as923, offset: 0, band: 915_000_000...928_000_000, helium: channels(from: 923_200_000, count: 8))
    /// Helium's AS923-1B: AS923-1's rules and defaults; Helium's channels 922.0 to 923.4 MHz.
    public static let as923_1b = as923Group(
        .as923_1b, offset: 0, band: 915_000_000...928_000_000, helium: channels(from: 922_000_000, count: 8))
    public static let as923_2 = as923Group(
        .as923_2, offset: -1_800_000, band: 920_000_000...923_000_000, helium: channels(from: 921_400_000, count: 8))
    public static let as923_3 = as923Group(
        .as923_3, offset: -6_600_000, band: 915_000_000...921_000_000, helium: channels(from: 916_600_000, count: 8))
    public static let as923_4 = as923Group(
        .as923_4, offset: -5_900_000, band: 917_000_000...920_000_000, helium: channels(from: 917_300_000, count: 8))

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
        subBands: [],
        rx1DataRateRule: .in865,
        helium: helium([865_062_500, 865_402_500, 865_985_000], eirp: 30, heliumStandard)
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
        ],
        rx1DataRateRule: .subtracting,
        helium: helium(channels(from: 922_100_000, count: 7), eirp: 14, heliumStandard)
    )

    /// RU864 (RP002-1.0.4 §2.14): 864 to 870 MHz, default channels 868.9 and 869.1 MHz, RX2
    /// 869.1 MHz at DR0, 16 dBm EIRP, 1 % duty cycle over the band (The Things Stack's
    /// `ru_864_870_rp2_v1_0_3.go` and LoRaMac-node; LoRa Basics Modem splits the band into
    /// 0.1 %, 1 % and 10 % parts after the Russian rules, which are stricter at 864–865 MHz).
    public static let ru864 = Region(
        name: .ru864,
        band: 864_000_000...870_000_000,
        uplinkChannels: [868_900_000, 869_100_000],
        downlinkChannels: [],
        dataRates: sf12ToSF7.merging([6: lora(.sf7, .khz250), 7: .fsk(bitsPerSecond: 50_000)]) { $1 },
        maximumMACPayload: [0: 59, 1: 59, 2: 59, 3: 123, 4: 250, 5: 250, 6: 250, 7: 250],
        maximumEIRP: 16,
        rx2FrequencyHz: 869_100_000,
        rx2DataRate: 0,
        subBands: [SubBand(frequencies: 864_000_000...870_000_000, dutyCycle: 0.01, maximumEIRP: 16)],
        rx1DataRateRule: .subtracting,
        helium: helium(
            [864_100_000, 864_300_000, 864_500_000, 864_700_000, 864_900_000, 868_900_000, 869_100_000], eirp: 16,
            heliumStandard)
    )

    /// CN470 as Helium runs it: the plan of LoRaWAN Regional Parameters 1.0.x (v1.0.3rA §2.6,
    /// kept by RP002-1.0.0 before the 20 and 26 MHz plans replaced it): 96 uplink channels
    /// 470.3 + 0.2 n MHz, 48 downlink channels 500.3 + 0.2 n MHz (RX1 on uplink channel mod 48),
    /// RX2 505.3 MHz at DR0, DR0–5 SF12 to SF7 at 125 kHz, 19.15 dBm EIRP, no duty cycle.
    public static let cn470 = Region(
        name: .cn470,
        band: 470_000_000...510_000_000,
        uplinkChannels: channels(from: 470_300_000, count: 96),
        downlinkChannels: channels(from: 500_300_000, count: 48),
        dataRates: sf12ToSF7,
        maximumMACPayload: [0: 59, 1: 59, 2: 59, 3: 123, 4: 250, 5: 250],
        maximumEIRP: 19.15,
        rx2FrequencyHz: 505_300_000,
        rx2DataRate: 0,
        subBands: [],
        rx1DataRateRule: .subtracting,
        helium: helium(channels(from: 486_300_000, count: 8), eirp: 19.1, heliumStandard)
    )

    /// EU433 (RP002-1.0.4 §2.7): default channels 433.175, 433.375 and 433.575 MHz, RX2
    /// 434.665 MHz at DR0, 12.15 dBm EIRP; ETSI EN 300 220-2's 433.05–434.79 MHz band allows
    /// 10 % duty cycle (The Things Stack's `eu_433_rp2_v1_0_4.go`; LoRaMac-node uses 1 %).
    /// Helium's plan stores these channels ten times too low (43 317 500 Hz …); they are meant
    /// as here.
    public static let eu433 = Region(
        name: .eu433,
        band: 433_050_000...434_790_000,
        uplinkChannels: [433_175_000, 433_375_000, 433_575_000],
        downlinkChannels: [],
        dataRates: sf12ToSF7.merging([6: lora(.sf7, .khz250), 7: .fsk(bitsPerSecond: 50_000)]) { $1 },
        maximumMACPayload: [0: 59, 1: 59, 2: 59, 3: 123, 4: 250, 5: 250, 6: 250, 7: 250],
        maximumEIRP: 12.15,
        rx2FrequencyHz: 434_665_000,
        rx2DataRate: 0,
        subBands: [SubBand(frequencies: 433_050_000...434_790_000, dutyCycle: 0.1, maximumEIRP: 12.15)],
        rx1DataRateRule: .subtracting,
        helium: helium([433_175_000, 433_375_000, 433_575_000], eirp: 12.1, heliumStandard)
    )
}
