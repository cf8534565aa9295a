import ChirpStack
import Clocks
import Credits
import Frames
import Logging
import Radio
import ServiceLifecycle
import Store
import Synchronization

/// The frame pipeline: frames from the radio's inbox → traffic statistics → the meter (one
/// transaction a batch) → beacons to the coverage service. A graceful shutdown stops the radio;
/// the pipeline then stores what the radio had already handed over and returns.
public final class FramePipeline: Service, Sendable {
    /// What the pipeline has done since the start.
    public struct Counters: Sendable, Equatable {
        /// Frames taken from the radio, stored or not.
        public var taken = 0
        /// Frames metered, and of them uplinks forwarded and refused.
        public var metered = 0
        public var forwarded = 0
        public var refused = 0
        /// Wall-clock nanoseconds of the last uplink forwarded.
        public var lastUplinkAt: Int64?
        /// Why the store refuses writes, while it does.
        public var storeFailure: String?
        /// Frames the store could not take since the start.
        public var notStored = 0
        /// Uplinks `[filters]` left out, by reason (`filtered_dev_addr`, `filtered_join_eui`).
        public var filtered: [String: Int] = [:]

        public init(metered: Int = 0, forwarded: Int = 0, refused: Int = 0) {
            self.metered = metered
            self.forwarded = forwarded
            self.refused = refused
        }
    }

    private struct State {
        var counters = Counters()
        var notStoredSinceReport = 0
        var lastStoreReport: Duration = .zero
    }

    /// The most frames metered in one transaction.
    public static let batchLimit = 256
    /// How long frames gather after the first of a batch arrives before they are committed:
    /// at a hotspot's rates (a frame every few milliseconds) one transaction then carries
    /// several frames, and rewrites the pages they share (the owner's account, the outbox's
    /// last page, the sequence) once. An uplink waits this much longer for the broker; a
    /// Class A downlink has a second. Once `gatherEnough` frames wait, they go at once: a
    /// busy radio fills its batches without waiting.
    public static let gatherWindow: Duration = .milliseconds(20)
    public static let gatherEnough = 32
    /// A store refusing writes is said again, with a count, at most this often.
    public static let storeReportInterval: Duration = .seconds(60)

    let inbox: FrameInbox
    private let radio: any Radio
    private let meter: Meter
    private let statistics: TrafficStatistics
    private let onBeacon: @Sendable (RadioFrame) async -> Void
    private let clock: any AgentClock
    private let logger: Logger
    private let dataDirectory: String
    private let state = Mutex(State())
    private let gatherWindow: Duration

    public init(
        inbox: FrameInbox, radio: any Radio, meter: Meter, statistics: TrafficStatistics, clock: any AgentClock,
        dataDirectory: String, logger: Logger, gatherWindow: Duration = FramePipeline.gatherWindow,
        onBeacon: @escaping @Sendable (RadioFrame) async -> Void
    ) {
        self.gatherWindow = gatherWindow
        self.inbox = inbox
        self.radio = radio
        self.meter = meter
        self.statistics = statistics
        self.clock = clock
        self.dataDirectory = dataDirectory
        self.logger = logger
        self.onBeacon = onBeacon
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Meters until the radio stops and its last frames are stored. Frames wait in the inbox
    /// while the meter commits the ones before them; each batch is then one transaction (group
    /// commit). At a trickle a batch is one frame.
    public func run() async {
        let radio = self.radio
        let gather = gatherWindow
        await withGracefulShutdownHandler {
            for await _ in inbox.arrivals {
                if gather > .zero { await inbox.gathered(atLeast: Self.gatherEnough, within: gather) }
                await meterWaiting()
            }
            // The radio stopped: what it put in last is stored too.
            await meterWaiting()
        } onGracefulShutdown: {
            Task { await radio.stop() }
        }
    }

    private func meterWaiting() async {
        while case let batch = inbox.take(atMost: Self.batchLimit), !batch.isEmpty {
            state.withLock { $0.counters.taken += batch.count }
            statistics.recordReceived(batch)
            await meter(batch)
        }
    }

    /// Meters a batch, one transaction for it where the store takes it (the meter retries a
    /// refused transaction frame by frame, so that one bad frame costs itself alone).
    public func meter(_ batch: [RadioFrame]) async {
        let results = await meter.meterEach(batch: batch)
        let now = clock.wallClock()
        var failure: (StoreError, Int)?
        var stored = false
        state.withLock { state in
            for result in results {
                switch result {
                case .success(let outcome):
                    state.counters.record(outcome, at: now)
                    // Only a forwarded uplink proves the store writes again: a refusal writes nothing.
                    if outcome.isForwarded { stored = true }
                case .failure(let error):
                    failure = (error, (failure?.1 ?? 0) + 1)
                }
            }
        }
        if stored { storeAccepted() }
        if let (error, count) = failure { storeRefused(error, frames: count) }
        for (frame, result) in zip(batch, results) where (try? result.get()) == .beacon {
            await onBeacon(frame)
        }
    }

    /// A frame the store could not take is neither debited nor forwarded: the transaction that
    /// would have done both is rolled back. The first refusal is logged at once; after it, one
    /// line a minute at most counts them, so that a full disk does not also flood the journal.
    private func storeRefused(_ error: StoreError, frames: Int) {
        let now = clock.monotonic()
        let (first, later) = state.withLock { state -> (Bool, Int?) in
            state.counters.notStored += frames
            let first = state.counters.storeFailure == nil
            state.counters.storeFailure = error.message
            if first {
                state.lastStoreReport = now
                return (true, nil)
            }
            state.notStoredSinceReport += frames
            guard now - state.lastStoreReport >= Self.storeReportInterval else { return (false, nil) }
            defer {
                state.notStoredSinceReport = 0
                state.lastStoreReport = now
            }
            return (false, state.notStoredSinceReport)
        }
        if first {
            logger.error(
                """
                the store refuses writes: \(error.message); uplinks are neither debited nor forwarded until it \
                takes them again
                """,
                metadata: ["data_dir": "\(dataDirectory)"])
        } else if let later {
            logger.error("\(later) more frames not stored: \(error.message)")
        }
    }

    private func storeAccepted() {
        let recovered = state.withLock { state -> Int? in
            guard state.counters.storeFailure != nil else { return nil }
            state.counters.storeFailure = nil
            state.notStoredSinceReport = 0
            return state.counters.notStored
        }
        if let recovered {
            logger.notice("the store takes writes again; \(recovered) frames could not be stored since the start")
        }
    }
}

extension FramePipeline.Counters {
    mutating func record(_ outcome: MeterOutcome, at now: Int64) {
        metered += 1
        if outcome.isForwarded {
            forwarded += 1
            lastUplinkAt = now
        } else if case .refused = outcome {
            refused += 1
        } else if case .dropped(let reason) = outcome, reason == .filteredDevAddr || reason == .filteredJoinEUI {
            filtered[reason.rawValue, default: 0] += 1
        }
    }
}

extension MeterOutcome {
    /// Put into the outbox as an uplink (charged, unpaired or a join).
    var isForwarded: Bool {
        switch self {
        case .forwarded, .forwardedUnpaired, .forwardedJoin: true
        default: false
        }
    }
}

/// Frames between the radio and the meter: the radio's side puts them in one by one, the
/// meter's side takes what has gathered. `arrivals` signals (coalesced) that there is more.
public final class FrameInbox: FrameSink {
    private let frames = Mutex<[RadioFrame]>([])
    /// The meter's side waiting for a batch to fill: how many it waits for, and its wake-up.
    private let gathering = Mutex<(count: Int, wake: CheckedContinuation<Void, Never>)?>(nil)
    let arrivals: AsyncStream<Void>
    private let signal: AsyncStream<Void>.Continuation

    public init() {
        (arrivals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// How many frames may wait: as many as the radio's own buffer holds.
    public static let capacity = 1024

    /// Adds a frame; false when the inbox is full and the frame is dropped (the meter is that
    /// far behind the radio).
    public func put(_ frame: RadioFrame) -> Bool {
        let (added, count) = frames.withLock { frames in
            guard frames.count < Self.capacity else { return (false, frames.count) }
            frames.append(frame)
            return (true, frames.count)
        }
        signal.yield()
        if added { wakeGatherer(ifAtLeast: count) }
        return added
    }

    /// Returns once `count` frames wait, or `patience` has passed, whichever is first.
    func gathered(atLeast count: Int, within patience: Duration) async {
        guard self.count < count else { return }
        let timer = Task {
            guard (try? await Task.sleep(for: patience)) != nil else { return }
            self.wakeGatherer(ifAtLeast: .max)
        }
        await withCheckedContinuation { continuation in
            gathering.withLock { $0 = (count, continuation) }
            // A frame may have come between the check above and now.
            wakeGatherer(ifAtLeast: self.count)
        }
        timer.cancel()
    }

    /// Wakes the meter's side if it waits for at most `count` frames (`.max`: whatever it
    /// waits for).
    private func wakeGatherer(ifAtLeast count: Int) {
        let wake = gathering.withLock { waiting -> CheckedContinuation<Void, Never>? in
            guard let current = waiting, count >= current.count else { return nil }
            waiting = nil
            return current.wake
        }
        wake?.resume()
    }

    /// Frames waiting now.
    var count: Int { frames.withLock { $0.count } }

    func take(atMost limit: Int) -> [RadioFrame] {
        frames.withLock { frames in
            guard frames.count > limit else {
                defer { frames.removeAll(keepingCapacity: true) }
                return frames
            }
            defer { frames.removeFirst(limit) }
            return Array(frames.prefix(limit))
        }
    }

    /// No more frames will come; the meter's side ends once it has taken the rest.
    public func finish() {
        signal.finish()
        wakeGatherer(ifAtLeast: .max)
    }
}
