import HAL
import LoRaPHY
import Synchronization

/// Decides whether a transmission may go out, and remembers those that did.
public protocol TransmitPolicy: Sendable {
    /// Why `request` may not be sent now, or nil when it may.
    func check(_ request: TransmitRequest) -> TransmitOutcome?

    /// Counts a transmission that went out against the duty cycle.
    func record(_ request: TransmitRequest)
}

/// A region's rules: the band, the EIRP limit (per sub-band in EU868) and, where sub-bands
/// have one, the duty cycle over a sliding hour, as ETSI EN 300 220 counts it.
public final class RegionalTransmitPolicy: TransmitPolicy {
    public let region: Region
    private let now: @Sendable () -> UInt64
    private let window: UInt64
    private let usage = Mutex<[(band: Int, endNanoseconds: UInt64, airtimeNanoseconds: UInt64)]>([])

    /// `now` is a monotonic clock in nanoseconds; `window` the duty-cycle period (one hour).
    public init(region: Region, window: Duration = .seconds(3600), now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.region = region
        self.now = now
        self.window = UInt64(window.components.seconds) * 1_000_000_000 + UInt64(window.components.attoseconds / 1_000_000_000)
    }

    public func check(_ request: TransmitRequest) -> TransmitOutcome? {
        guard region.allows(frequencyHz: request.frequencyHz) else { return .frequencyNotAllowed }
        guard Double(request.powerDBm) <= region.maximumEIRP(at: request.frequencyHz) else { return .powerNotAllowed }
        guard let band = region.subBands.firstIndex(where: { $0.frequencies.contains(request.frequencyHz) }) else { return nil }
        let budget = UInt64(region.subBands[band].dutyCycle * Double(window))
        let used = airtimeUsed(band: band)
        return used + UInt64(request.airtime.nanoseconds) > budget ? .dutyCycleExhausted : nil
    }

    public func record(_ request: TransmitRequest) {
        guard let band = region.subBands.firstIndex(where: { $0.frequencies.contains(request.frequencyHz) }) else { return }
        let at = now()
        usage.withLock { $0.append((band, at, UInt64(request.airtime.nanoseconds))) }
    }

    /// Time on air in `band` during the last window, in nanoseconds.
    public func airtimeUsed(band: Int) -> UInt64 {
        let at = now()
        return usage.withLock { usage in
            usage.removeAll { at > window && $0.endNanoseconds < at - window }
            return usage.filter { $0.band == band }.reduce(0) { $0 + $1.airtimeNanoseconds }
        }
    }
}
