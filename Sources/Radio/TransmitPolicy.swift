import Clocks
import HAL
import LoRaPHY
import Synchronization

/// Decides whether a transmission may go out. Admission reserves the frame's airtime at once,
/// so frames scheduled together cannot overrun a budget between them; a frame that is not sent
/// after all gives its reservation back.
public protocol TransmitPolicy: Sendable {
    /// Admits `request` and reserves what it uses, or says why it may not be sent.
    func admit(_ request: TransmitRequest) -> Result<TransmitTicket, TransmitRefusal>

    /// Gives back a reservation whose frame did not go out.
    func cancel(_ ticket: TransmitTicket)

    /// Whether the channel must be sensed before each transmission, and how.
    var listenBeforeTalk: ListenBeforeTalk? { get }
}

extension TransmitPolicy {
    public var listenBeforeTalk: ListenBeforeTalk? { nil }
}

/// A reservation made by a `TransmitPolicy`.
public struct TransmitTicket: Sendable, Hashable {
    public let id: Int
    public init(id: Int) { self.id = id }
}

/// Why a policy refused a transmission.
public struct TransmitRefusal: Error, Sendable, Hashable {
    public var outcome: TransmitOutcome
    public init(_ outcome: TransmitOutcome) { self.outcome = outcome }
}

/// Listening before talking, where a region's rules require it: the channel is sensed for
/// `sensingMicroseconds`, and a transmission goes out only if the strongest signal heard stays
/// below `thresholdDBm`.
public struct ListenBeforeTalk: Sendable, Hashable {
    public var thresholdDBm: Double
    public var sensingMicroseconds: Int

    public init(thresholdDBm: Double, sensingMicroseconds: Int) {
        self.thresholdDBm = thresholdDBm
        self.sensingMicroseconds = sensingMicroseconds
    }

    /// KR920: −65 dBm for 6 ms (LoRaWAN Regional Parameters RP002-1.0.4 §2.11, after the
    /// Korean technical rule for LPWA radios; LoRaMac-node's KR920_RSSI_FREE_TH and
    /// KR920_CARRIER_SENSE_TIME).
    public static let kr920 = ListenBeforeTalk(thresholdDBm: -65, sensingMicroseconds: 6_000)
    /// Japan (AS923): −80 dBm for at least 5 ms (ARIB STD-T108 §3.4.1, carrier sense level
    /// and time for 920 MHz band transmitters).
    public static let japan = ListenBeforeTalk(thresholdDBm: -80, sensingMicroseconds: 5_000)
}

/// A region's rules for what a gateway transmits, each from LoRaWAN Regional Parameters
/// RP002-1.0.4 and the national rule it cites: the occupied bandwidth inside the band (and,
/// in EU868, inside one sub-band), the region's data rates only, the EIRP limit with the
/// antenna's gain added to the conducted power, the dwell time where the region limits it,
/// the duty cycle of EU868's sub-bands over a sliding hour, and whether the channel must be
/// sensed first (`listenBeforeTalk`, which the radio carries out).
public final class RegionalTransmitPolicy: TransmitPolicy {
    public let region: Region
    /// dBi: a power limit is EIRP, the conducted power plus this.
    public let antennaGainDBi: Double
    /// AS923's 400 ms dwell time (RP002-1.0.4 §2.8.3, DownlinkDwellTime = 1), where the
    /// country enforces it (on unless configured off).
    public let dwellTimeLimited: Bool
    /// Set where the rules require it (KR920 always; AS923 in Japan).
    public let listenBeforeTalk: ListenBeforeTalk?
    private let now: @Sendable () -> UInt64
    private let window: UInt64
    private struct Use {
        var id: Int
        var band: Int
        var atNanoseconds: UInt64
        var airtimeNanoseconds: UInt64
    }
    private let usage = Mutex<(uses: [Use], nextID: Int)>(([], 0))

    /// `now` is a monotonic clock in nanoseconds; `window` the duty-cycle period (one hour).
    /// `dwellTimeLimited` and `listenBeforeTalk` default to what the region requires
    /// everywhere it applies; AS923 in Japan adds `.japan`.
    public init(
        region: Region, antennaGainDBi: Double = 0, dwellTimeLimited: Bool? = nil,
        listenBeforeTalk: ListenBeforeTalk?? = nil,
        window: Duration = .seconds(3600), now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds
    ) {
        self.region = region
        self.antennaGainDBi = antennaGainDBi
        self.dwellTimeLimited = dwellTimeLimited ?? true
        self.listenBeforeTalk = listenBeforeTalk ?? (region.name == .kr920 ? .kr920 : nil)
        self.now = now
        self.window =
            UInt64(Nanoseconds.of(window))
    }

    /// Why `request` may not go out in this region, or nil.
    public func refusal(of request: TransmitRequest) -> TransmitOutcome? {
        guard request.payload.count <= 255 else {
            return .failed("a LoRa frame carries at most 255 bytes, not \(request.payload.count)")
        }
        guard (6...65_535).contains(request.preambleLength) else {
            return .failed("preamble of \(request.preambleLength) symbols (6 to 65535)")
        }
        // Only the region's own data rates (RP002-1.0.4, each region's data-rate table): a
        // 7.8 kHz or 500 kHz signal where the plan has none spreads where it has no right to.
        guard region.index(of: request.dataRate, uplink: false) != nil else {
            return .failed("\(request.dataRate) is not a data rate of \(region.name.displayName)")
        }
        // The whole signal, the centre frequency ± half the bandwidth, inside the band, and in
        // EU868 inside one sub-band.
        guard region.holds(frequencyHz: request.frequencyHz, bandwidthHz: request.dataRate.bandwidth.exactHz) else {
            return .frequencyNotAllowed
        }
        let subBand = subBandIndex(of: request).map { region.subBands[$0] }
        // EIRP, not conducted power (RP002-1.0.4: every region's limit is EIRP; 47 CFR
        // 15.247(b)(4) for US915; ETSI's ERP + 2.15 dB in EU868).
        guard Double(request.powerDBm) + antennaGainDBi <= subBand?.maximumEIRP ?? region.maximumEIRP else {
            return .powerNotAllowed
        }
        // Dwell time: US915 and AU915 signals narrower than 250 kHz hop, and may stay 400 ms on
        // a channel (47 CFR 15.247(a)(1)(i); ACMA LIPD Class Licence 2015, item 55, with
        // AS/NZS 4268); AS923 where DownlinkDwellTime applies.
        if region.dwellTimeApplies(to: request.dataRate.bandwidth, as923DwellTime: dwellTimeLimited),
            request.airtime.nanoseconds > Region.dwellTimeNanoseconds
        {
            return .failed(
                "\(request.airtime.milliseconds) ms on air is over \(region.name.displayName)'s 400 ms dwell time")
        }
        return nil
    }

    private func subBandIndex(of request: TransmitRequest) -> Int? {
        region.subBandIndex(frequencyHz: request.frequencyHz, bandwidthHz: request.dataRate.bandwidth.exactHz)
    }

    public func admit(_ request: TransmitRequest) -> Result<TransmitTicket, TransmitRefusal> {
        if let refusal = refusal(of: request) { return .failure(.init(refusal)) }
        let band = subBandIndex(of: request)
        let airtime = UInt64(max(request.airtime.nanoseconds, 0))
        let at = now()
        return usage.withLock { usage in
            defer { usage.nextID += 1 }
            let ticket = TransmitTicket(id: usage.nextID)
            guard let band else { return .success(ticket) }
            prune(&usage.uses, at: at)
            let used = usage.uses.filter { $0.band == band }.reduce(0) { $0 + $1.airtimeNanoseconds }
            let budget = UInt64(region.subBands[band].dutyCycle * Double(window))
            guard used + airtime <= budget else { return .failure(.init(.dutyCycleExhausted)) }
            usage.uses.append(Use(id: ticket.id, band: band, atNanoseconds: at, airtimeNanoseconds: airtime))
            return .success(ticket)
        }
    }

    public func cancel(_ ticket: TransmitTicket) {
        usage.withLock { $0.uses.removeAll { $0.id == ticket.id } }
    }

    /// Time on air reserved in `band` during the last window, in nanoseconds.
    public func airtimeUsed(band: Int) -> UInt64 {
        let at = now()
        return usage.withLock { usage in
            prune(&usage.uses, at: at)
            return usage.uses.filter { $0.band == band }.reduce(0) { $0 + $1.airtimeNanoseconds }
        }
    }

    private func prune(_ uses: inout [Use], at: UInt64) {
        guard at > window else { return }
        uses.removeAll { $0.atNanoseconds < at - window }
    }
}
