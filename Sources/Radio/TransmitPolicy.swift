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

/// A region's rules: the band, the EIRP limit (per sub-band in EU868), sane frame limits, and,
/// where sub-bands have one, the duty cycle over a sliding hour, as ETSI EN 300 220 counts it.
public final class RegionalTransmitPolicy: TransmitPolicy {
    public let region: Region
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
    public init(region: Region, window: Duration = .seconds(3600), now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.region = region
        self.now = now
        self.window = UInt64(window.components.seconds) * 1_000_000_000 + UInt64(window.components.attoseconds / 1_000_000_000)
    }

    public func admit(_ request: TransmitRequest) -> Result<TransmitTicket, TransmitRefusal> {
        guard request.payload.count <= 255 else { return .failure(.init(.failed("a LoRa frame carries at most 255 bytes, not \(request.payload.count)"))) }
        guard (6...65_535).contains(request.preambleLength) else { return .failure(.init(.failed("preamble of \(request.preambleLength) symbols (6 to 65535)"))) }
        guard region.allows(frequencyHz: request.frequencyHz) else { return .failure(.init(.frequencyNotAllowed)) }
        guard Double(request.powerDBm) <= region.maximumEIRP(at: request.frequencyHz) else { return .failure(.init(.powerNotAllowed)) }
        let band = region.subBands.firstIndex { $0.frequencies.contains(request.frequencyHz) }
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
