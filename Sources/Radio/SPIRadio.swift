import Clocks
import HAL
import LoRaPHY
import Logging
import Wire

#if canImport(Glibc)
    import Glibc
#endif

/// The register- or command-level half of a single-channel radio driver: the SX127x or the
/// SX126x. Its methods run only on the radio's own thread (the `SPIRadio` actor's executor),
/// where they may block briefly on SPI transfers and BUSY waits.
protocol RadioChip: AnyObject {
    /// "sx127x", "sx126x": for logs.
    var name: String { get }
    var resetLine: (any GPIOLine)? { get }
    /// The line whose rising edge signals an interrupt (DIO0, DIO1), when the board has it.
    var interruptLine: (any GPIOLine)? { get }

    /// Takes the SPI device and the lines.
    func open() throws(HardwareError)
    /// Gives them back.
    func close()
    /// After a reset: checks the chip is the one expected, sets it up and listens.
    func setUp(_ configuration: RadioConfiguration) throws(RadioError)
    /// Listens as `configuration` says.
    func configureReceiver(_ configuration: RadioConfiguration) throws(HardwareError)
    /// Reads and clears the interrupt flags, and reports what they said.
    func serviceInterrupts(_ configuration: RadioConfiguration, timestamp: UInt32) throws(HardwareError) -> [ChipEvent]
    /// Everything for a transmission but the last step, so the frame can leave on the dot.
    func prepareTransmission(_ request: TransmitRequest) throws(HardwareError)
    /// The last step: on air.
    func keyUp() throws(HardwareError)
    /// Listens on `frequencyHz` at `dataRate`'s bandwidth, to sense the channel before talking.
    func startSensing(frequencyHz: UInt32, dataRate: LoRaDataRate) throws(HardwareError)
    /// The signal power on the channel sensed, now, in dBm.
    func instantaneousRSSI() throws(HardwareError) -> Double
    /// The power the chip uses for a request: what was asked, within what it can give.
    func power(for dBm: Int) -> Int
    /// Why the chip is not as it was set up, or nil when it is.
    func healthProblem(_ configuration: RadioConfiguration) -> String?
    /// Puts the chip to sleep, keeping nothing running.
    func sleep()
}

/// What an interrupt told a chip driver.
enum ChipEvent {
    case received(RadioFrame)
    case transmitted
}

/// A single-channel radio over SPI and GPIO: the SX127x (SX1276/77/78/79, RFM95/96) or the
/// SX126x (SX1261/62), chosen by the board profile.
///
/// The driver is an actor on a thread of its own (see `ThreadExecutor`). It resets the chip,
/// checks it, configures LoRa mode and listens continuously. Interrupts arrive as GPIO edge
/// events stamped by the kernel, or the chip's flags are polled on a board without the line.
/// Transmissions run one at a time at the time asked for: the radio listens until just before,
/// is prepared, keys up on the dot and returns to receiving. A health check re-reads the chip's
/// identity and configuration and sets it up again when it stopped answering or lost its
/// registers (a brown-out, a reset from outside), counting and logging each time.
public actor SPIRadio: Radio {
    public nonisolated let frames: AsyncStream<RadioFrame>
    private let output: AsyncStream<RadioFrame>.Continuation
    private nonisolated let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let chip: any RadioChip
    private let board: any BoardHardware
    private var configuration: RadioConfiguration
    private let gate: TransmitGate
    /// Where the region requires it, the channel is sensed before each transmission.
    private let listenBeforeTalk: ListenBeforeTalk?
    private let logger: Logger
    private let timing: RadioTiming

    private var tasks: [Task<Void, Never>] = []
    private var stats = RadioStatistics()
    private var running = false
    /// Whether the last set-up succeeded; the health check retries while it did not.
    private var responsive = false
    private var transmitting: (id: Int, continuation: CheckedContinuation<Bool, Never>)?
    private var queue = TransmitQueue()

    public init(
        board: any BoardHardware, configuration: RadioConfiguration, policy: any TransmitPolicy,
        logger: Logger = Logger(label: "hotspotd.radio"), timing: RadioTiming = RadioTiming()
    ) throws(RadioError) {
        switch board.profile.radio.family {
        case .sx127x: chip = SX127xChip(board: board)
        case .sx126x: chip = SX126xChip(board: board)
        case .concentrator:
            throw RadioError(
                """
                a \(board.profile.radio.displayName) concentrator is driven by the packet forwarder: use the \
                semtech_udp backend
                """
            )
        }
        do {
            executor = try ThreadExecutor(name: chip.name)
        } catch {
            throw RadioError(error.message)
        }
        self.board = board
        self.configuration = configuration
        gate = TransmitGate(policy: policy, timing: timing)
        listenBeforeTalk = policy.listenBeforeTalk
        self.logger = logger
        self.timing = timing
        (frames, output) = AsyncStream.makeStream(
            of: RadioFrame.self, bufferingPolicy: .bufferingOldest(timing.frameBuffer))
    }

    // MARK: Life cycle

    public func start() async throws(RadioError) {
        guard !running else { return }
        do {
            try chip.open()
        } catch {
            chip.close()
            throw RadioError(error.message)
        }
        do {
            try await setUp()
        } catch {
            chip.close()
            throw error
        }
        running = true
        if let line = chip.interruptLine, let edges = try? line.edgeEvents() {
            tasks.append(Task { await self.serviceEdges(edges) })
        } else {
            logger.info("\(chip.name): no interrupt line, polling", metadata: ["interval": "\(timing.pollInterval)"])
            tasks.append(Task { await self.pollInterrupts() })
        }
        tasks.append(Task { await self.checkHealthPeriodically() })
        logger.info(
            "\(chip.name) receiving",
            metadata: [
                "frequency": "\(configuration.frequencyHz)", "data_rate": "\(configuration.dataRate)",
            ])
    }

    /// Listens on another channel or data rate from now on (a channel plan from the network
    /// server). A transmission under way finishes first: the radio returns to receive with the
    /// new configuration when it is done.
    public func retune(to configuration: RadioConfiguration) async throws(RadioError) {
        let previous = self.configuration
        self.configuration = configuration
        guard running, transmitting == nil else { return }
        do {
            try chip.configureReceiver(configuration)
        } catch {
            self.configuration = previous
            try? chip.configureReceiver(previous)
            throw RadioError(error.message)
        }
        logger.info(
            "\(chip.name) receiving",
            metadata: ["frequency": "\(configuration.frequencyHz)", "data_rate": "\(configuration.dataRate)"])
    }

    /// What the radio listens on now.
    public var receiving: RadioConfiguration { configuration }

    /// Where received frames go instead of `frames`, once `deliver(to:)` named it.
    private var sink: (any FrameSink)?

    public func deliver(to sink: any FrameSink) async {
        self.sink = sink
        if stopped { sink.finish() }
    }

    /// Stopped after a start: no frame will come.
    private var stopped = false

    public func stop() async {
        guard running else { return }
        running = false
        stopped = true
        for task in tasks { task.cancel() }
        tasks.removeAll()
        chip.sleep()
        transmitting?.continuation.resume(returning: false)
        transmitting = nil
        chip.close()
        output.finish()
        sink?.finish()
    }

    public func statistics() -> RadioStatistics { stats }

    public nonisolated func currentTimestamp() async -> UInt32 {
        microsecondCounter()
    }

    /// Pulses reset, then has the chip checked and set up. Throws when it does not answer.
    private func setUp() async throws(RadioError) {
        responsive = false
        do {
            if let reset = chip.resetLine {
                try reset.setValue(true)
                try? await Task.sleep(for: .milliseconds(max(board.profile.reset.pulseMilliseconds, 1)))
                try reset.setValue(false)
                try? await Task.sleep(for: .milliseconds(board.profile.reset.recoveryMilliseconds))
            }
        } catch {
            throw RadioError(error.message)
        }
        try chip.setUp(configuration)
        responsive = true
        stats.lastProgressNanoseconds = monotonicNanoseconds()
    }

    // MARK: Interrupts

    private func serviceEdges(_ edges: AsyncStream<GPIOEdgeEvent>) async {
        for await edge in edges {
            guard running else { break }
            serviceInterrupts(timestamp: UInt32(truncatingIfNeeded: edge.timestampNanoseconds / 1000))
        }
    }

    private func pollInterrupts() async {
        while running && !Task.isCancelled {
            serviceInterrupts(timestamp: microsecondCounter())
            try? await Task.sleep(for: timing.pollInterval)
        }
    }

    private func serviceInterrupts(timestamp: UInt32) {
        let events: [ChipEvent]
        do {
            events = try chip.serviceInterrupts(configuration, timestamp: timestamp)
        } catch {
            logger.warning("\(chip.name): reading the interrupt flags failed", metadata: ["error": "\(error)"])
            return
        }
        for event in events {
            switch event {
            case .received(let frame):
                stats.framesReceived += 1
                stats.lastProgressNanoseconds = monotonicNanoseconds()
                if frame.crc == .bad {
                    stats.crcErrors += 1
                    logger.debug(
                        "\(chip.name): CRC error",
                        metadata: ["size": "\(frame.payload.count)", "rssi": "\(frame.rssiDBm)"])
                }
                if let sink {
                    if !sink.put(frame) { stats.framesDropped += 1 }
                } else if case .dropped = output.yield(frame) {
                    stats.framesDropped += 1
                }
            case .transmitted:
                if let pending = transmitting {
                    transmitting = nil
                    pending.continuation.resume(returning: true)
                }
            }
        }
    }

    // MARK: Transmission

    public func transmit(_ request: TransmitRequest) async -> TransmitOutcome {
        guard running, responsive else {
            return refuse(.failed("the radio is not running"))
        }
        let admission: TransmitGate.Admission
        switch gate.admit(request, now: microsecondCounter()) {
        case .failure(let refusal): return refuse(refusal.outcome)
        case .success(let admitted): admission = admitted
        }
        var sent = false
        defer { gate.finish(admission, sent: sent) }
        await withCheckedContinuation { queue.acquire($0) }
        defer { queue.release() }

        // Keep listening until just before the start (and the sensing before it, where the
        // region wants the channel heard free first); then prepare and key up on time.
        let sensing = Int64(listenBeforeTalk?.sensingMicroseconds ?? 0)
        await sleepUntil(admission.start, leaving: timing.preparationMicroseconds + sensing)
        guard running else { return refuse(.failed("the radio stopped")) }
        let airtime = request.airtime
        var outcome: TransmitOutcome
        do throws(HardwareError) {
            if let rule = listenBeforeTalk, let heard = try senseChannel(request, rule) {
                throw HardwareError(
                    .busy,
                    """
                    the channel is busy: \(Int(heard.rounded())) dBm heard, over the \(Int(rule.thresholdDBm)) dBm \
                    listen-before-talk threshold
                    """
                )
            }
            try chip.prepareTransmission(request)
            spinUntil(admission.start)
            if case .atTimestamp = request.timing, lateness(of: admission.start) > timing.lateToleranceMicroseconds {
                outcome = .tooLate
            } else {
                try chip.keyUp()
                sent = await awaitTxDone(id: admission.id, timeout: airtime.duration + .milliseconds(500))
                if sent {
                    outcome = .sent(powerDBm: chip.power(for: request.powerDBm))
                } else if !running {
                    outcome = .failed("the radio stopped")
                } else {
                    outcome = .failed("no TxDone from the radio within \(airtime.milliseconds + 500) ms")
                }
            }
        } catch {
            logger.warning("\(chip.name): transmission failed", metadata: ["error": "\(error)"])
            outcome = .failed(error.message)
        }
        // A radio stopped meanwhile is asleep and closed: nothing to return to.
        if running {
            do {
                try chip.configureReceiver(configuration)
            } catch {
                logger.warning("\(chip.name): returning to receive failed", metadata: ["error": "\(error)"])
            }
        }
        guard sent else { return refuse(outcome) }
        stats.framesTransmitted += 1
        stats.lastProgressNanoseconds = monotonicNanoseconds()
        return outcome
    }

    /// Listens on the frame's channel for the rule's sensing time; the strongest signal heard
    /// when it is at or over the threshold (the channel is busy), nil when it stayed free.
    private func senseChannel(_ request: TransmitRequest, _ rule: ListenBeforeTalk) throws(HardwareError) -> Double? {
        try chip.startSensing(frequencyHz: request.frequencyHz, dataRate: request.dataRate)
        let end = monotonicNanoseconds() + UInt64(rule.sensingMicroseconds) * 1_000
        var strongest = -Double.infinity
        repeat {
            strongest = max(strongest, try chip.instantaneousRSSI())
            if strongest >= rule.thresholdDBm { return strongest }
            usleep(250)
        } while monotonicNanoseconds() < end
        return nil
    }

    private func refuse(_ outcome: TransmitOutcome) -> TransmitOutcome {
        stats.transmissionsRefused += 1
        return outcome
    }

    /// Frames admitted and not yet finished (for tests).
    func pendingTransmissions() -> Int { gate.pending }

    private func awaitTxDone(id: Int, timeout: Duration) async -> Bool {
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.transmissionTimedOut(id: id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            transmitting = (id, continuation)
            if chip.interruptLine == nil { serviceInterrupts(timestamp: microsecondCounter()) }
        }
    }

    private func transmissionTimedOut(id: Int) {
        guard let pending = transmitting, pending.id == id else { return }
        transmitting = nil
        pending.continuation.resume(returning: false)
    }

    // MARK: Health

    private func checkHealthPeriodically() async {
        while running && !Task.isCancelled {
            try? await Task.sleep(for: timing.healthCheckInterval)
            guard running, !Task.isCancelled else { return }
            await checkHealth()
        }
    }

    /// Confirms the chip still answers and still holds its configuration; sets it up again
    /// when not. Skipped while a transmission is under way.
    public func checkHealth() async {
        guard running, !queue.isBusy else { return }
        guard let problem = chip.healthProblem(configuration) else {
            if !responsive { logger.notice("\(chip.name) answers again") }
            responsive = true
            stats.lastProgressNanoseconds = monotonicNanoseconds()
            // An edge missed while the flags were already set would otherwise never come again.
            if let line = chip.interruptLine, (try? line.value()) == true {
                serviceInterrupts(timestamp: microsecondCounter())
            }
            return
        }
        stats.reinitialisations += 1
        logger.warning(
            "\(chip.name): \(problem); setting the radio up again",
            metadata: ["reinitialisations": "\(stats.reinitialisations)"])
        do {
            try await setUp()
            logger.notice("\(chip.name) receiving again")
        } catch {
            logger.error("\(chip.name): the radio does not answer: \(error.message)")
        }
    }
}

/// Timing knobs of the SPI radio drivers; tests shorten them.
public struct RadioTiming: Sendable {
    /// How often the chip's identity and configuration are checked.
    public var healthCheckInterval: Duration
    /// How often the interrupt flags are read on a board without an interrupt line.
    public var pollInterval: Duration
    /// A scheduled transmission needs at least this much notice.
    public var minimumLeadMicroseconds: Int64
    /// And at most this much: further ahead is refused as too early.
    public var maximumLeadMicroseconds: Int64
    /// How long before its start a frame is prepared: the radio listens until then.
    public var preparationMicroseconds: Int64
    /// A scheduled frame that can no longer start within this of its time is refused as too late.
    public var lateToleranceMicroseconds: Int64
    /// Received frames held for a slow consumer before new ones are dropped.
    public var frameBuffer: Int

    public init(
        healthCheckInterval: Duration = .seconds(5), pollInterval: Duration = .milliseconds(2),
        minimumLeadMicroseconds: Int64 = 5_000, maximumLeadMicroseconds: Int64 = 10_000_000,
        preparationMicroseconds: Int64 = 3_000, lateToleranceMicroseconds: Int64 = 2_000, frameBuffer: Int = 1024
    ) {
        self.healthCheckInterval = healthCheckInterval
        self.pollInterval = pollInterval
        self.minimumLeadMicroseconds = minimumLeadMicroseconds
        self.maximumLeadMicroseconds = maximumLeadMicroseconds
        self.preparationMicroseconds = preparationMicroseconds
        self.lateToleranceMicroseconds = lateToleranceMicroseconds
        self.frameBuffer = frameBuffer
    }
}

/// The local radios' timestamp counter: CLOCK_MONOTONIC in microseconds, wrapping at 2^32 like
/// a concentrator's `tmst`, and in the same time base as GPIO edge events.
public func microsecondCounter() -> UInt32 {
    UInt32(truncatingIfNeeded: monotonicNanoseconds() / 1000)
}

func hex(_ byte: UInt8) -> String { Hex.encode(byte) }
