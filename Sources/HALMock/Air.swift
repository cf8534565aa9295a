import Clocks
import Dispatch
import HAL
import LoRaPHY
import Synchronization

/// A LoRa frame on the simulated air: what was sent, where, how, and how strong it arrives.
public struct AirFrame: Sendable, Hashable {
    public var payload: [UInt8]
    public var frequencyHz: UInt32
    public var modulation: LoRaModulation
    public var syncWord: LoRaSyncWord
    /// Downlinks and gateway beacons' opposite: LoRaWAN uplinks are sent with IQ not inverted.
    public var invertedIQ: Bool
    public var preambleLength: Int
    /// Whether the frame carries a payload CRC, and whether it checks at the receiver.
    public var hasCRC: Bool
    public var crcValid: Bool
    /// Signal strength and SNR at the receiver.
    public var rssiDBm: Double
    public var snrDB: Double
    /// Who sent it, for logs and tests ("sensor-1", "radio sx1276").
    public var source: String

    public init(
        payload: [UInt8], frequencyHz: UInt32, modulation: LoRaModulation,
        syncWord: LoRaSyncWord = .public, invertedIQ: Bool = false, preambleLength: Int = 8,
        hasCRC: Bool = true, crcValid: Bool = true, rssiDBm: Double = -80, snrDB: Double = 7.5,
        source: String = "transmitter"
    ) {
        self.payload = payload
        self.frequencyHz = frequencyHz
        self.modulation = modulation
        self.syncWord = syncWord
        self.invertedIQ = invertedIQ
        self.preambleLength = preambleLength
        self.hasCRC = hasCRC
        self.crcValid = crcValid
        self.rssiDBm = rssiDBm
        self.snrDB = snrDB
        self.source = source
    }

    /// Time on air, explicit header.
    public var airtime: LoRaAirtime {
        LoRaAirtime(modulation: modulation, payloadLength: payload.count, preambleLength: preambleLength, crc: hasCRC)
    }
}

/// What a receiving radio is tuned to.
public struct AirReception: Sendable, Hashable {
    public var frequencyHz: UInt32
    public var spreadingFactor: SpreadingFactor
    public var bandwidth: LoRaBandwidth
    public var syncWord: LoRaSyncWord
    public var invertedIQ: Bool
    /// Changes whenever the radio stops receiving and starts again (a transmission, a standby,
    /// a reset in between): a frame is heard only by a radio that listened all through it.
    public var session: Int

    public init(
        frequencyHz: UInt32, spreadingFactor: SpreadingFactor, bandwidth: LoRaBandwidth, syncWord: LoRaSyncWord,
        invertedIQ: Bool, session: Int
    ) {
        self.frequencyHz = frequencyHz
        self.spreadingFactor = spreadingFactor
        self.bandwidth = bandwidth
        self.syncWord = syncWord
        self.invertedIQ = invertedIQ
        self.session = session
    }

    /// Whether a radio tuned like this demodulates `frame`: same spreading factor, bandwidth,
    /// sync word and IQ polarity, and a centre frequency within a quarter of the bandwidth.
    public func hears(_ frame: AirFrame) -> Bool {
        let offset = abs(Int64(frame.frequencyHz) - Int64(frequencyHz))
        return frame.modulation.spreadingFactor == spreadingFactor
            && frame.modulation.bandwidth == bandwidth
            && frame.syncWord == syncWord
            && frame.invertedIQ == invertedIQ
            && Double(offset) <= bandwidth.exactHz / 4
    }
}

/// A radio attached to the air.
public protocol AirListener: AnyObject, Sendable {
    var airName: String { get }
    /// What the radio listens to right now; nil when it is not receiving (asleep, in standby,
    /// transmitting, held in reset).
    func reception() -> AirReception?
    /// The end of a frame the radio was tuned to has arrived.
    func hear(_ frame: AirFrame)
    /// A frame it heard waits in its buffer, not yet read by the host. A radio that reports it
    /// calls `Air.frameReadOut()` when that changes.
    var holdsUnreadFrame: Bool { get }
}

extension AirListener {
    public var holdsUnreadFrame: Bool { false }
}

/// The simulated air between the mock board's radios and simulated transmitters.
///
/// A transmitter (a sensor, a neighbour's beacon, noise — whatever a test, the demo or a
/// benchmark places) calls `send`; each attached radio that is receiving on the frame's channel
/// and data rate from the frame's start to its end, without a break, hears it. Frames the
/// radios transmit are recorded, can be awaited, and reach the other radios on the same air.
///
/// `timeScale` stretches simulated time: 1 is real time (a frame takes its airtime), 0 makes
/// every frame arrive at once, which keeps unit tests fast and deterministic.
public final class Air: Sendable {
    public let timeScale: Double
    /// RSSI and SNR with which one board radio hears another.
    public let radioLinkRSSI: Double
    public let radioLinkSNR: Double

    private struct State {
        var listeners: [ObjectIdentifier: Weak] = [:]
        var transmitted: [AirFrame] = []
        var transmissionStarts: [UInt64] = []
        var subscribers: [Int: AsyncStream<AirFrame>.Continuation] = [:]
        var nextSubscriber = 0
        var sent = 0
        var heard = 0
        /// `sendAndAwaitReadout` callers waiting for the radios' hosts.
        var readoutWaiters: [CheckedContinuation<Bool, Never>] = []
    }

    private struct Weak: @unchecked Sendable {
        weak var listener: (any AirListener)?
    }

    private let state = Mutex(State())
    /// Signals occupying channels (another transmitter nearby), by centre frequency: what a
    /// radio sensing the channel (listen-before-talk) hears there.
    private let occupied = Mutex<[UInt32: Double]>([:])
    /// What a receiver hears on a free channel.
    public static let noiseFloorDBm = -120.0

    /// Puts a signal of `rssiDBm` on the channel at `frequencyHz` (nil takes it away).
    public func occupy(frequencyHz: UInt32, rssiDBm: Double?) {
        occupied.withLock { $0[frequencyHz] = rssiDBm }
    }

    /// The strongest signal within 62.5 kHz of `frequencyHz`, or the noise floor.
    public func channelRSSI(at frequencyHz: UInt32) -> Double {
        occupied.withLock { signals in
            signals.filter {
                Int64($0.key) - Int64(frequencyHz) < 62_500 && Int64(frequencyHz) - Int64($0.key) < 62_500
            }.values.max()
        } ?? Self.noiseFloorDBm
    }

    /// Radio transmissions kept for inspection; older ones are dropped.
    public static let transmissionLimit = 10_000

    public init(timeScale: Double = 1, radioLinkRSSI: Double = -70, radioLinkSNR: Double = 9) {
        self.timeScale = max(timeScale, 0)
        self.radioLinkRSSI = radioLinkRSSI
        self.radioLinkSNR = radioLinkSNR
    }

    public func attach(_ listener: any AirListener) {
        state.withLock { $0.listeners[ObjectIdentifier(listener)] = Weak(listener: listener) }
    }

    public func detach(_ listener: any AirListener) {
        _ = state.withLock { $0.listeners.removeValue(forKey: ObjectIdentifier(listener)) }
    }

    /// A simulated transmitter sends `frame`. With a time scale of 0 it is delivered before
    /// this returns; otherwise when its airtime (scaled) has passed.
    public func send(_ frame: AirFrame) {
        state.withLock { $0.sent += 1 }
        deliver(frame, excluding: nil, after: frame.airtime.duration)
    }

    /// Sends `frame`, then waits until no radio holds a frame its host has not read: a
    /// transmitter that waits its turn, so that a benchmark can offer frames exactly as fast as
    /// a driver takes them (a real channel needs each frame's airtime instead). With a time
    /// scale of 0 only.
    public func sendAndAwaitReadout(_ frame: AirFrame) async {
        precondition(timeScale == 0, "sendAndAwaitReadout needs an air whose frames arrive at once")
        send(frame)
        while !Task.isCancelled {
            let clear = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                    // Under the lock, so that a read-out between the check and the wait still wakes it.
                    let clear = state.withLock { state -> Bool in
                        let holding = state.listeners.values.contains { $0.listener?.holdsUnreadFrame == true }
                        // Checked under the lock too: a cancellation that already ran its handler
                        // would not wake this waiter again.
                        let cancelled = Task.isCancelled
                        if holding && !cancelled {
                            state.readoutWaiters.append(continuation)
                        }
                        return !holding || cancelled
                    }
                    if clear { continuation.resume(returning: true) }
                }
            } onCancel: {
                frameReadOut()  // the waiters look again, and a cancelled one stops waiting
            }
            if clear { return }
        }
    }

    /// A radio's host read a frame out (or the radio lost it): wakes `sendAndAwaitReadout`.
    /// Called by radios outside their own locks.
    public func frameReadOut() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            defer { state.readoutWaiters.removeAll(keepingCapacity: true) }
            return state.readoutWaiters
        }
        // false: not known to be clear; each waiter looks again.
        for waiter in waiters { waiter.resume(returning: false) }
    }

    /// Frames sent by `send` and frames the radios heard, for tests and the demo's counters.
    public var counts: (sent: Int, heard: Int) {
        state.withLock { ($0.sent, $0.heard) }
    }

    /// Everything the board's radios transmitted, oldest first.
    public var transmissions: [AirFrame] {
        state.withLock { $0.transmitted }
    }

    /// When each of `transmissions` went on air (CLOCK_MONOTONIC nanoseconds, the clock of the
    /// radios' microsecond counter).
    public var transmissionStarts: [UInt64] {
        state.withLock { $0.transmissionStarts }
    }

    /// The radios' transmissions from now on.
    public func transmissionStream() -> AsyncStream<AirFrame> {
        let (stream, continuation) = AsyncStream.makeStream(of: AirFrame.self)
        let id = state.withLock { state -> Int in
            defer { state.nextSubscriber += 1 }
            state.subscribers[state.nextSubscriber] = continuation
            return state.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// A radio on the air transmits: the frame is recorded at once, and reaches the other
    /// radios, with the link's RSSI and SNR, when its airtime has passed.
    public func radioTransmitted(_ frame: AirFrame, by radio: any AirListener) {
        let subscribers = state.withLock { state -> [AsyncStream<AirFrame>.Continuation] in
            state.transmitted.append(frame)
            state.transmissionStarts.append(monotonicNanoseconds())
            if state.transmitted.count > Self.transmissionLimit {
                state.transmitted.removeFirst(state.transmitted.count - Self.transmissionLimit)
                state.transmissionStarts.removeFirst(state.transmissionStarts.count - Self.transmissionLimit)
            }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.yield(frame) }
        var received = frame
        received.rssiDBm = radioLinkRSSI
        received.snrDB = radioLinkSNR
        deliver(received, excluding: ObjectIdentifier(radio), after: frame.airtime.duration)
    }

    /// Runs `action` after `delay` of simulated time: at once (on this thread) when the time
    /// scale is 0, otherwise on a background queue.
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) {
        let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) * 1e-18
        let scaled = seconds * timeScale
        if scaled <= 0 {
            action()
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + scaled, execute: action)
        }
    }

    private func deliver(_ frame: AirFrame, excluding excluded: ObjectIdentifier?, after airtime: Duration) {
        let candidates = state.withLock { state in
            state.listeners.filter { $0.key != excluded }.map(\.value)
        }
        // Who is tuned to the frame when it starts, and in which reception session.
        var tuned: [(listener: Weak, session: Int)] = []
        for candidate in candidates {
            if let listener = candidate.listener, let reception = listener.reception(), reception.hears(frame) {
                tuned.append((candidate, reception.session))
            }
        }
        guard !tuned.isEmpty else { return }
        schedule(after: airtime) { [self, tuned] in
            var heard = 0
            for (candidate, session) in tuned {
                guard let listener = candidate.listener, let reception = listener.reception(),
                    reception.hears(frame), reception.session == session
                else { continue }
                listener.hear(frame)
                heard += 1
            }
            state.withLock { $0.heard += heard }
        }
    }
}
