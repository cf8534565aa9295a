import LoRaPHY
import Messages
import Radio
import Wire

/// The channels a network server asks a gateway to listen on (ChirpStack's
/// `gw.GatewayConfiguration` on `command/config`), checked against the region before anything
/// is applied: a plan is taken whole or refused whole.
public struct ChannelPlan: Sendable, Equatable {
    public enum Modulation: Sendable, Equatable {
        /// LoRa at `bandwidthHz`, any of these spreading factors.
        case lora(bandwidthHz: UInt32, spreadingFactors: [Int])
        case fsk(bandwidthHz: UInt32, bitsPerSecond: UInt32)
    }

    public struct Channel: Sendable, Equatable {
        public var frequencyHz: UInt32
        public var modulation: Modulation

        public init(frequencyHz: UInt32, modulation: Modulation) {
            self.frequencyHz = frequencyHz
            self.modulation = modulation
        }

        var bandwidthHz: UInt32 {
            switch modulation {
            case .lora(let bandwidth, _), .fsk(let bandwidth, _): bandwidth
            }
        }
    }

    /// The server's name for this plan, reported back in `event/stats` (`config_version`).
    public var version: String
    public var channels: [Channel]

    public init(version: String, channels: [Channel]) {
        self.version = version
        self.channels = channels
    }

    /// At most this many channels in a plan: a concentrator's eight multi-SF channels, its
    /// single-SF LoRa channel and its FSK channel, with room to say why a longer one is refused.
    public static let maximumChannels = 64

    /// Reads a plan; `gatewayID` is this gateway's, which a plan naming another does not suit.
    public static func decode(_ configuration: Gw_GatewayConfiguration, gatewayID: String) -> Result<
        ChannelPlan, ChannelPlanRefusal
    > {
        if !configuration.gatewayID.isEmpty, configuration.gatewayID.lowercased() != gatewayID.lowercased() {
            return .failure(.init("it is meant for gateway \(configuration.gatewayID), not \(gatewayID)"))
        }
        guard configuration.channels.count <= maximumChannels else {
            return .failure(.init("\(configuration.channels.count) channels; no gateway has that many"))
        }
        guard configuration.version.utf8.count <= 128 else {
            return .failure(.init("a version of \(configuration.version.utf8.count) bytes (at most 128)"))
        }
        var channels: [Channel] = []
        for (index, channel) in configuration.channels.enumerated() {
            switch channel.modulationConfig {
            case .loraModulationConfig(let lora)?:
                // ChirpStack fills `bandwidth` in Hz; `bandwidth_legacy` was in kHz.
                let bandwidth =
                    lora.bandwidth != 0 ? lora.bandwidth : UInt32(clamping: UInt64(lora.bandwidthLegacy) * 1000)
                guard !lora.spreadingFactors.isEmpty else {
                    return .failure(.init("channel \(index) names no spreading factor"))
                }
                channels.append(
                    Channel(
                        frequencyHz: channel.frequency,
                        modulation: .lora(bandwidthHz: bandwidth, spreadingFactors: lora.spreadingFactors.map(Int.init))
                    ))
            case .fskModulationConfig(let fsk)?:
                let bandwidth =
                    fsk.bandwidth != 0 ? fsk.bandwidth : UInt32(clamping: UInt64(fsk.bandwidthLegacy) * 1000)
                channels.append(
                    Channel(
                        frequencyHz: channel.frequency,
                        modulation: .fsk(bandwidthHz: bandwidth, bitsPerSecond: fsk.bitrate)
                    ))
            case nil:
                return .failure(.init("channel \(index) has no modulation"))
            }
        }
        return .success(ChannelPlan(version: configuration.version, channels: channels))
    }

    /// The plan as ChirpStack's message carries it (what is kept on disk).
    public func message(gatewayID: String) -> Gw_GatewayConfiguration {
        var message = Gw_GatewayConfiguration()
        message.gatewayID = gatewayID
        message.version = version
        message.channels = channels.map { channel in
            var configuration = Gw_ChannelConfiguration()
            configuration.frequency = channel.frequencyHz
            switch channel.modulation {
            case .lora(let bandwidth, let factors):
                var lora = Gw_LoraModulationConfig()
                lora.bandwidth = bandwidth
                lora.spreadingFactors = factors.map { UInt32(clamping: $0) }
                configuration.modulationConfig = .loraModulationConfig(lora)
            case .fsk(let bandwidth, let bitrate):
                var fsk = Gw_FskModulationConfig()
                fsk.bandwidth = bandwidth
                fsk.bitrate = bitrate
                configuration.modulationConfig = .fskModulationConfig(fsk)
            }
            return configuration
        }
        return message
    }

    /// Why `region` does not allow this plan, or nil: every channel's whole signal inside the
    /// band, and every LoRa data rate (spreading factor at bandwidth) and FSK rate one of the
    /// region's uplink data rates.
    public func problem(in region: Region) -> ChannelPlanRefusal? {
        guard !channels.isEmpty else { return .init("it has no channel") }
        let name = region.name.displayName
        for channel in channels {
            let megahertz = Double(channel.frequencyHz) / 1_000_000
            guard
                region.holds(
                    frequencyHz: channel.frequencyHz, bandwidthHz: Double(channel.bandwidthHz), inOneSubBand: false)
            else {
                return .init("\(megahertz) MHz is outside \(name)")
            }
            switch channel.modulation {
            case .lora(let bandwidthHz, let factors):
                guard let bandwidth = LoRaBandwidth(hz: Int(bandwidthHz)) else {
                    return .init("\(bandwidthHz) Hz at \(megahertz) MHz is not a LoRa bandwidth")
                }
                for factor in factors {
                    guard let spreadingFactor = SpreadingFactor(rawValue: factor),
                        region.index(of: LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth)) != nil
                    else {
                        return .init("SF\(factor) at \(bandwidthHz / 1000) kHz is not an uplink data rate of \(name)")
                    }
                }
            case .fsk(_, let bitrate):
                let allowed = region.dataRates.values.contains {
                    if case .fsk(let rate) = $0 { return rate == Int(bitrate) }
                    return false
                }
                guard allowed else { return .init("FSK at \(bitrate) bit/s is not a data rate of \(name)") }
            }
        }
        return nil
    }

    /// What a single SPI radio listens on for this plan: it hears one channel at one data rate,
    /// so the plan must name exactly one LoRa channel with one spreading factor.
    public func radioConfiguration(from base: RadioConfiguration) -> Result<RadioConfiguration, ChannelPlanRefusal> {
        guard channels.count == 1, let channel = channels.first else {
            return .failure(.init("a single radio listens on one channel at a time; this plan has \(channels.count)"))
        }
        guard case .lora(let bandwidthHz, let factors) = channel.modulation else {
            return .failure(.init("the radio receives LoRa only, not FSK"))
        }
        guard factors.count == 1, let factor = factors.first, let spreadingFactor = SpreadingFactor(rawValue: factor),
            let bandwidth = LoRaBandwidth(hz: Int(bandwidthHz))
        else {
            return .failure(
                .init("a single radio demodulates one spreading factor at a time; this channel names \(factors.count)")
            )
        }
        var configuration = base
        configuration.frequencyHz = channel.frequencyHz
        configuration.dataRate = LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth)
        return .success(configuration)
    }
}

/// Why a channel plan was refused.
public struct ChannelPlanRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    /// Refused after trying to apply it (the hardware or the forwarder would not take it),
    /// rather than on reading it.
    public var afterAttempt: Bool

    public init(_ description: String, afterAttempt: Bool = false) {
        self.description = description
        self.afterAttempt = afterAttempt
    }
}

/// A Semtech packet forwarder's `global_conf.json` (`SX1301_conf` of lora_pkt_fwd, `SX130x_conf`
/// of sx1302_hal's) with a channel plan written into it: the two radios' centre frequencies
/// and, relative to them, the eight multi-SF LoRa channels, the single-SF LoRa channel and
/// the FSK channel. Every other key of the file stays as it was.
public enum ForwarderConfiguration {
    /// How far from its radio's centre a channel may lie (SX1301/SX1302 IF range, as Semtech's
    /// reference plans use it: 867.1–867.9 MHz around 867.5 MHz).
    public static let maximumOffsetHz: Int64 = 400_000
    public static let multiSFChannels = 8

    /// The section of the file that describes the concentrator.
    static let sections = ["SX130x_conf", "SX1301_conf"]

    /// `text` (comments allowed, as Semtech's parser allows them) with `plan` written in.
    public static func rewrite(_ text: [UInt8], with plan: ChannelPlan) -> Result<String, ChannelPlanRefusal> {
        let root: JSONValue
        do {
            root = try JSON.parse(withoutComments(text))
        } catch {
            return .failure(.init("the forwarder's configuration is not JSON: \(error)"))
        }
        guard case .object(var members) = root,
            let index = members.firstIndex(where: { sections.contains($0.0) }),
            case .object(var concentrator) = members[index].1
        else {
            return .failure(.init("the forwarder's configuration has no SX1301_conf or SX130x_conf section"))
        }
        let layout: Layout
        switch Layout.of(plan) {
        case .success(let found): layout = found
        case .failure(let refusal): return .failure(refusal)
        }
        func set(_ key: String, _ values: [(String, JSONValue)]) {
            var section: [(String, JSONValue)] = []
            if let existing = concentrator.first(where: { $0.0 == key }), case .object(let old) = existing.1 {
                section = old
            }
            for (name, value) in values {
                if let slot = section.firstIndex(where: { $0.0 == name }) {
                    section[slot].1 = value
                } else {
                    section.append((name, value))
                }
            }
            if let slot = concentrator.firstIndex(where: { $0.0 == key }) {
                concentrator[slot].1 = .object(section)
            } else {
                concentrator.append((key, .object(section)))
            }
        }
        for radio in 0..<2 {
            if radio < layout.radios.count {
                set("radio_\(radio)", [("enable", .bool(true)), ("freq", .number(Double(layout.radios[radio])))])
            } else if radio > 0 {
                set("radio_\(radio)", [("enable", .bool(false))])
            }
        }
        for slot in 0..<multiSFChannels {
            if slot < layout.multiSF.count {
                let (radio, offset) = layout.multiSF[slot]
                set(
                    "chan_multiSF_\(slot)",
                    [("enable", .bool(true)), ("radio", .number(Double(radio))), ("if", .number(Double(offset)))])
            } else {
                set("chan_multiSF_\(slot)", [("enable", .bool(false))])
            }
        }
        if let (radio, offset, bandwidth, factor) = layout.standard {
            set(
                "chan_Lora_std",
                [
                    ("enable", .bool(true)), ("radio", .number(Double(radio))), ("if", .number(Double(offset))),
                    ("bandwidth", .number(Double(bandwidth))), ("spread_factor", .number(Double(factor))),
                ])
        } else {
            set("chan_Lora_std", [("enable", .bool(false))])
        }
        if let (radio, offset, bandwidth, rate) = layout.fsk {
            set(
                "chan_FSK",
                [
                    ("enable", .bool(true)), ("radio", .number(Double(radio))), ("if", .number(Double(offset))),
                    ("bandwidth", .number(Double(bandwidth))), ("datarate", .number(Double(rate))),
                ])
        } else {
            set("chan_FSK", [("enable", .bool(false))])
        }
        members[index].1 = .object(concentrator)
        return .success(JSON.serialize(.object(members)) + "\n")
    }

    /// Where each channel of a plan goes on a concentrator: radio centres, and each channel's
    /// radio and offset from its centre.
    struct Layout {
        var radios: [Int64] = []
        var multiSF: [(radio: Int, offset: Int64)] = []
        var standard: (radio: Int, offset: Int64, bandwidth: UInt32, spreadingFactor: Int)?
        var fsk: (radio: Int, offset: Int64, bandwidth: UInt32, bitsPerSecond: UInt32)?

        static func of(_ plan: ChannelPlan) -> Result<Layout, ChannelPlanRefusal> {
            let multi = plan.channels.filter {
                if case .lora(125_000, _) = $0.modulation { return true }
                return false
            }
            let standard = plan.channels.filter {
                if case .lora(let bandwidth, _) = $0.modulation { return bandwidth != 125_000 }
                return false
            }
            let fsk = plan.channels.filter {
                if case .fsk = $0.modulation { return true }
                return false
            }
            guard multi.count <= multiSFChannels else {
                return .failure(.init("\(multi.count) multi-SF channels; a concentrator has \(multiSFChannels)"))
            }
            guard standard.count <= 1 else {
                return .failure(.init("\(standard.count) 250 or 500 kHz LoRa channels; a concentrator has one"))
            }
            guard fsk.count <= 1 else { return .failure(.init("\(fsk.count) FSK channels; a concentrator has one")) }
            if case .lora(_, let factors)? = standard.first?.modulation, factors.count != 1 {
                return .failure(
                    .init("the 250 or 500 kHz LoRa channel demodulates one spreading factor, not \(factors.count)"))
            }
            // The radios: channels in frequency order, each radio taking as many as fit within
            // its offset range either side of its centre.
            var layout = Layout()
            var groups: [[Int64]] = []
            for frequency in plan.channels.map({ Int64($0.frequencyHz) }).sorted() {
                if let first = groups.last?.first, frequency - first <= 2 * maximumOffsetHz {
                    groups[groups.count - 1].append(frequency)
                } else {
                    groups.append([frequency])
                }
            }
            guard groups.count <= 2 else {
                return .failure(.init("its channels span more than a concentrator's two radios can cover"))
            }
            layout.radios = groups.map { ($0.first! + $0.last!) / 2 }
            func place(_ frequency: UInt32) -> (Int, Int64) {
                let radio = groups.firstIndex { $0.contains(Int64(frequency)) }!
                return (radio, Int64(frequency) - layout.radios[radio])
            }
            layout.multiSF = multi.map { place($0.frequencyHz) }
            if let channel = standard.first, case .lora(let bandwidth, let factors) = channel.modulation {
                let (radio, offset) = place(channel.frequencyHz)
                layout.standard = (radio, offset, bandwidth, factors[0])
            }
            if let channel = fsk.first, case .fsk(let bandwidth, let rate) = channel.modulation {
                let (radio, offset) = place(channel.frequencyHz)
                layout.fsk = (radio, offset, bandwidth, rate)
            }
            return .success(layout)
        }
    }

    /// JSON with Semtech's `/* … */` and `// …` comments removed (outside strings).
    static func withoutComments(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        var inString = false
        while index < bytes.count {
            let byte = bytes[index]
            if inString {
                output.append(byte)
                if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                    output.append(bytes[index + 1])
                    index += 2
                    continue
                }
                if byte == UInt8(ascii: "\"") { inString = false }
                index += 1
            } else if byte == UInt8(ascii: "\"") {
                inString = true
                output.append(byte)
                index += 1
            } else if byte == UInt8(ascii: "/"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "*") {
                index += 2
                while index + 1 < bytes.count,
                    !(bytes[index] == UInt8(ascii: "*") && bytes[index + 1] == UInt8(ascii: "/"))
                {
                    index += 1
                }
                index += 2
                output.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "/"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "/") {
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
            } else {
                output.append(byte)
                index += 1
            }
        }
        return output
    }
}
