import HAL
import LoRaPHY
import Logging

/// The SX1276/77/78/79 (and HopeRF RFM95/96) in LoRa mode: a single-channel receiver and
/// transmitter over SPI, with RxDone and TxDone on DIO0.
///
/// The driver runs on its own thread (see `RadioExecutor`). It resets the chip through the
/// reset line, checks RegVersion, configures LoRa mode and listens continuously. RxDone arrives
/// as a DIO0 edge event, stamped by the kernel; a board without DIO0 has the IRQ flags polled.
/// A health check re-reads the chip's identity and configuration and sets it up again when the
/// chip stopped answering or lost its registers (a brown-out, a reset from outside).
public actor SX127xRadio: Radio {
    public nonisolated let frames: AsyncStream<RadioFrame>
    private let output: AsyncStream<RadioFrame>.Continuation
    private nonisolated let executor: RadioExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let board: any BoardHardware
    private var configuration: RadioConfiguration
    private let gate: TransmitGate
    private let logger: Logger
    private let timing: RadioTiming

    private var spi: (any SPIDevice)?
    private var reset: (any GPIOLine)?
    private var dio0: (any GPIOLine)?
    private var tasks: [Task<Void, Never>] = []
    private var stats = RadioStatistics()
    private var running = false
    /// Whether the last initialisation succeeded; the health check retries while it did not.
    private var responsive = false
    private var transmitting: (id: Int, continuation: CheckedContinuation<Bool, Never>)?
    private var queue = TransmitQueue()

    enum Register {
        static let fifo: UInt8 = 0x00
        static let opMode: UInt8 = 0x01
        static let frfMsb: UInt8 = 0x06
        static let paConfig: UInt8 = 0x09
        static let ocp: UInt8 = 0x0B
        static let lna: UInt8 = 0x0C
        static let fifoAddrPtr: UInt8 = 0x0D
        static let fifoTxBaseAddr: UInt8 = 0x0E
        static let fifoRxBaseAddr: UInt8 = 0x0F
        static let fifoRxCurrentAddr: UInt8 = 0x10
        static let irqFlagsMask: UInt8 = 0x11
        static let irqFlags: UInt8 = 0x12
        static let rxNbBytes: UInt8 = 0x13
        static let pktSnrValue: UInt8 = 0x19
        static let pktRssiValue: UInt8 = 0x1A
        static let hopChannel: UInt8 = 0x1C
        static let modemConfig1: UInt8 = 0x1D
        static let modemConfig2: UInt8 = 0x1E
        static let preambleMsb: UInt8 = 0x20
        static let payloadLength: UInt8 = 0x22
        static let maxPayloadLength: UInt8 = 0x23
        static let modemConfig3: UInt8 = 0x26
        static let detectOptimize: UInt8 = 0x31
        static let invertIQ: UInt8 = 0x33
        static let detectionThreshold: UInt8 = 0x37
        static let syncWord: UInt8 = 0x39
        static let invertIQ2: UInt8 = 0x3B
        static let dioMapping1: UInt8 = 0x40
        static let version: UInt8 = 0x42
        static let paDac: UInt8 = 0x4D
    }

    enum Mode: UInt8 {
        case sleep = 0x80, standby = 0x81, tx = 0x83, rxContinuous = 0x85
    }

    enum IRQ {
        static let rxDone: UInt8 = 0x40
        static let payloadCrcError: UInt8 = 0x20
        static let txDone: UInt8 = 0x08
    }

    /// The bandwidth codes of RegModemConfig1 bits 7–4, in order.
    static let bandwidthCodes: [LoRaBandwidth] = [.khz7_8, .khz10_4, .khz15_6, .khz20_8, .khz31_25, .khz41_7, .khz62_5, .khz125, .khz250, .khz500]

    public init(
        board: any BoardHardware, configuration: RadioConfiguration, policy: any TransmitPolicy,
        logger: Logger = Logger(label: "hotspotd.radio"), timing: RadioTiming = RadioTiming()
    ) throws(RadioError) {
        guard board.profile.radio.family == .sx127x else {
            throw RadioError("the sx127x driver cannot drive a \(board.profile.radio.displayName)")
        }
        do {
            executor = try RadioExecutor(name: "sx127x")
        } catch {
            throw RadioError(error.message)
        }
        self.board = board
        self.configuration = configuration
        gate = TransmitGate(policy: policy, timing: timing)
        self.logger = logger
        self.timing = timing
        (frames, output) = AsyncStream.makeStream(of: RadioFrame.self, bufferingPolicy: .bufferingOldest(timing.frameBuffer))
    }

    // MARK: Life cycle

    public func start() async throws(RadioError) {
        guard !running else { return }
        do {
            spi = try board.openSPI()
            reset = try board.requestLine(.reset, .output(initial: false))
            dio0 = try board.requestLineIfPresent(.dio0, .input(edges: .rising))
        } catch {
            releaseHardware()
            throw RadioError(error.message)
        }
        do {
            try await initialise()
        } catch {
            releaseHardware()
            throw error
        }
        running = true
        if let dio0, let edges = try? dio0.edgeEvents() {
            tasks.append(Task { await self.serviceEdges(edges) })
        } else {
            logger.info("no DIO0 line: polling the IRQ flags", metadata: ["interval": "\(timing.pollInterval)"])
            tasks.append(Task { await self.pollInterrupts() })
        }
        tasks.append(Task { await self.checkHealthPeriodically() })
        logger.info("sx127x receiving", metadata: [
            "frequency": "\(configuration.frequencyHz)", "data_rate": "\(configuration.dataRate)",
        ])
    }

    public func stop() async {
        guard running else { return }
        running = false
        for task in tasks { task.cancel() }
        tasks.removeAll()
        try? setMode(.sleep)
        transmitting?.continuation.resume(returning: false)
        transmitting = nil
        releaseHardware()
        output.finish()
    }

    private func releaseHardware() {
        dio0?.release()
        reset?.release()
        dio0 = nil
        reset = nil
        spi = nil
    }

    /// Changes how the radio listens; during a transmission the change applies when it ends.
    public func configure(_ configuration: RadioConfiguration) throws(RadioError) {
        self.configuration = configuration
        guard running, !queue.isBusy else { return }
        do {
            try configureReceiver()
        } catch {
            throw RadioError(error.message)
        }
    }

    public func statistics() -> RadioStatistics { stats }

    public nonisolated func currentTimestamp() async -> UInt32 {
        microsecondCounter()
    }

    // MARK: Initialisation

    /// Resets the chip, checks it is an SX127x, and listens. Throws when it does not answer.
    private func initialise() async throws(RadioError) {
        responsive = false
        do {
            if let reset {
                try reset.setValue(true)
                try await Task.sleep(for: .milliseconds(max(board.profile.reset.pulseMilliseconds, 1)))
                try reset.setValue(false)
                try await Task.sleep(for: .milliseconds(board.profile.reset.recoveryMilliseconds))
            }
            let version = try read(Register.version)
            guard version == 0x12 else {
                throw RadioError(version == 0x00 || version == 0xFF
                    ? "the SX127x on \(spi?.path ?? "SPI") does not answer (RegVersion 0x\(hex(version)))"
                    : "RegVersion is 0x\(hex(version)), not an SX1276-family radio (0x12)")
            }
            try configureReceiver()
        } catch let error as RadioError {
            throw error
        } catch let error as HardwareError {
            throw RadioError(error.message)
        } catch {
            throw RadioError("\(error)")
        }
        responsive = true
        stats.lastProgressNanoseconds = monotonicNanoseconds()
    }

    /// LoRa mode, the configured channel and data rate, continuous reception.
    private func configureReceiver() throws(HardwareError) {
        // LongRangeMode can only change in sleep.
        try write(Register.opMode, Mode.sleep.rawValue)
        try write(Register.opMode, Mode.sleep.rawValue)
        try write(Register.opMode, Mode.standby.rawValue)
        try setModulation(frequencyHz: configuration.frequencyHz, dataRate: configuration.dataRate, codingRate: configuration.codingRate, preamble: configuration.preambleLength, crc: true)
        try write(Register.syncWord, configuration.syncWord.rawValue)
        try setInvertedIQ(receive: configuration.invertedIQ, transmit: false)
        try write(Register.lna, 0x23)  // maximum gain, LNA boost on the HF port
        try write(Register.maxPayloadLength, 0xFF)
        try write(Register.fifoRxBaseAddr, 0x00)
        try write(Register.fifoTxBaseAddr, 0x00)
        try write(Register.irqFlagsMask, 0x00)
        try write(Register.irqFlags, 0xFF)
        try startReceiving()
    }

    private func startReceiving() throws(HardwareError) {
        try write(Register.dioMapping1, 0x00)  // DIO0 = RxDone
        try setMode(.rxContinuous)
    }

    private func setModulation(frequencyHz: UInt32, dataRate: LoRaDataRate, codingRate: CodingRate, preamble: Int, crc: Bool) throws(HardwareError) {
        let frf = (UInt64(frequencyHz) << 19) / 32_000_000
        try write(Register.frfMsb, UInt8(truncatingIfNeeded: frf >> 16), UInt8(truncatingIfNeeded: frf >> 8), UInt8(truncatingIfNeeded: frf))
        let bandwidthCode = UInt8(Self.bandwidthCodes.firstIndex(of: dataRate.bandwidth) ?? 7)
        try write(Register.modemConfig1, bandwidthCode << 4 | UInt8(codingRate.rawValue) << 1)  // explicit header
        let sf = UInt8(dataRate.spreadingFactor.rawValue)
        try write(Register.modemConfig2, sf << 4 | (crc ? 0x04 : 0x00))
        let lowDataRate = LoRaAirtime.requiresLowDataRateOptimize(dataRate.modulation())
        try write(Register.modemConfig3, (lowDataRate ? 0x08 : 0x00) | 0x04)  // AGC on
        try write(Register.preambleMsb, UInt8(truncatingIfNeeded: preamble >> 8), UInt8(truncatingIfNeeded: preamble))
        // SF6 needs its own detection settings (datasheet §4.1.1.2).
        try write(Register.detectOptimize, sf == 6 ? 0xC5 : 0xC3)
        try write(Register.detectionThreshold, sf == 6 ? 0x0C : 0x0A)
    }

    /// RegInvertIQ bit 6 inverts reception, bit 0 *cleared* inverts transmission; RegInvertIQ2
    /// must be 0x19 for inverted and 0x1D for normal reception.
    private func setInvertedIQ(receive: Bool, transmit: Bool) throws(HardwareError) {
        var value: UInt8 = 0x26
        if receive { value |= 0x40 }
        if !transmit { value |= 0x01 }
        try write(Register.invertIQ, value)
        try write(Register.invertIQ2, receive ? 0x19 : 0x1D)
    }

    private func setMode(_ mode: Mode) throws(HardwareError) {
        try write(Register.opMode, mode.rawValue)
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

    /// Reads and clears the IRQ flags; hands out a received frame; completes a transmission.
    private func serviceInterrupts(timestamp: UInt32) {
        do {
            let flags = try read(Register.irqFlags)
            guard flags != 0 else { return }
            try write(Register.irqFlags, flags)
            if flags & IRQ.rxDone != 0 {
                try receiveFrame(flags: flags, timestamp: timestamp)
            }
            if flags & IRQ.txDone != 0, let pending = transmitting {
                transmitting = nil
                pending.continuation.resume(returning: true)
            }
        } catch {
            logger.warning("sx127x: reading the IRQ flags failed", metadata: ["error": "\(error)"])
        }
    }

    private func receiveFrame(flags: UInt8, timestamp: UInt32) throws(HardwareError) {
        let count = Int(try read(Register.rxNbBytes))
        let start = try read(Register.fifoRxCurrentAddr)
        try write(Register.fifoAddrPtr, start)
        let payload = count > 0 ? try spi!.write([Register.fifo], thenRead: count) : []
        let snr = Double(Int8(bitPattern: try read(Register.pktSnrValue))) / 4
        let packetRssi = Double(try read(Register.pktRssiValue))
        let hasCRC = try read(Register.hopChannel) & 0x40 != 0
        let crc: CRCStatus = !hasCRC ? .absent : flags & IRQ.payloadCrcError != 0 ? .bad : .ok
        let frame = RadioFrame(
            payload: payload,
            frequencyHz: configuration.frequencyHz,
            dataRate: configuration.dataRate,
            codingRate: configuration.codingRate,
            rssiDBm: Self.packetRSSI(packetRssi: packetRssi, snr: snr, frequencyHz: configuration.frequencyHz),
            snrDB: snr,
            crc: crc,
            timestamp: timestamp,
            receivedAt: wallClockNanoseconds()
        )
        stats.framesReceived += 1
        stats.lastProgressNanoseconds = monotonicNanoseconds()
        if crc == .bad {
            stats.crcErrors += 1
            logger.debug("sx127x: CRC error", metadata: ["size": "\(count)", "rssi": "\(frame.rssiDBm)"])
        }
        if case .dropped = output.yield(frame) {
            stats.framesDropped += 1
        }
    }

    /// Packet RSSI by the SX1276 datasheet §5.5.5: −157 + PacketRssi (HF port, band 1) or −164
    /// (LF port, bands 2 and 3, up to 525 MHz); plus SNR when SNR < 0, otherwise the
    /// 16/15 correction. LoRaMac-node picks the port at 525 MHz too; arduino-LoRa's 868 MHz
    /// threshold would put 863–868 MHz on the wrong port.
    public static func packetRSSI(packetRssi: Double, snr: Double, frequencyHz: UInt32) -> Double {
        let offset: Double = frequencyHz > 525_000_000 ? -157 : -164
        return snr < 0 ? offset + packetRssi + snr : offset + packetRssi * 16 / 15
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

        // Keep listening until just before the start; then prepare and key up on time.
        await sleepUntil(admission.start, leaving: timing.preparationMicroseconds)
        guard running else { return refuse(.failed("the radio stopped")) }
        let airtime = request.airtime
        var outcome: TransmitOutcome
        do {
            try prepareTransmission(request)
            spinUntil(admission.start)
            if case .atTimestamp = request.timing, lateness(of: admission.start) > timing.lateToleranceMicroseconds {
                outcome = .tooLate
            } else {
                try setMode(.tx)
                sent = await awaitTxDone(id: admission.id, timeout: airtime.duration + .milliseconds(500))
                outcome = sent ? .sent(powerDBm: chipPower(request.powerDBm)) : .failed("no TxDone from the radio within \(airtime.milliseconds + 500) ms")
            }
        } catch {
            logger.warning("sx127x: transmission failed", metadata: ["error": "\(error)"])
            outcome = .failed(error.message)
        }
        do {
            try configureReceiver()
        } catch {
            logger.warning("sx127x: returning to receive failed", metadata: ["error": "\(error)"])
        }
        guard sent else { return refuse(outcome) }
        stats.framesTransmitted += 1
        stats.lastProgressNanoseconds = monotonicNanoseconds()
        return outcome
    }

    private func refuse(_ outcome: TransmitOutcome) -> TransmitOutcome {
        stats.transmissionsRefused += 1
        return outcome
    }

    private func prepareTransmission(_ request: TransmitRequest) throws(HardwareError) {
        try setMode(.standby)
        try setModulation(frequencyHz: request.frequencyHz, dataRate: request.dataRate, codingRate: request.codingRate, preamble: request.preambleLength, crc: request.crc)
        try setInvertedIQ(receive: false, transmit: request.invertedIQ)
        try setPower(request.powerDBm)
        try write(Register.fifoAddrPtr, 0x00)
        try write(Register.fifoTxBaseAddr, 0x00)
        if !request.payload.isEmpty {
            try spi!.write([Register.fifo | 0x80] + request.payload)
        }
        try write(Register.payloadLength, UInt8(request.payload.count))
        try write(Register.irqFlags, 0xFF)
        try write(Register.dioMapping1, 0x40)  // DIO0 = TxDone
    }

    /// The power the chip will use for a request: what was asked, within what the chip can do.
    private func chipPower(_ dBm: Int) -> Int {
        board.profile.frontEnd.paBoost ? min(max(dBm, 2), 20) : min(max(dBm, 0), 14)
    }

    /// PA_BOOST: 2 to 17 dBm, and 20 dBm with the high-power DAC. RFO: with MaxPower 7 the
    /// ceiling is 15 dBm and the output equals OutputPower, 0 to 14 dBm (datasheet §5.4.3).
    private func setPower(_ dBm: Int) throws(HardwareError) {
        let power = chipPower(dBm)
        if board.profile.frontEnd.paBoost {
            if power > 17 {
                try write(Register.paDac, 0x87)
                try write(Register.ocp, 0x20 | 0x12)  // 150 mA
                try write(Register.paConfig, 0x80 | UInt8(power - 5))
            } else {
                try write(Register.paDac, 0x84)
                try write(Register.ocp, 0x20 | 0x0B)  // 100 mA
                try write(Register.paConfig, 0x80 | UInt8(power - 2))
            }
        } else {
            try write(Register.paConfig, 0x70 | UInt8(power))
        }
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
            if dio0 == nil { serviceInterrupts(timestamp: microsecondCounter()) }
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
        let problem: String?
        do {
            let version = try read(Register.version)
            let mode = try read(Register.opMode)
            let syncWord = try read(Register.syncWord)
            if version != 0x12 {
                problem = "RegVersion reads 0x\(hex(version))"
            } else if mode != Mode.rxContinuous.rawValue || syncWord != configuration.syncWord.rawValue {
                problem = "configuration lost (RegOpMode 0x\(hex(mode)), RegSyncWord 0x\(hex(syncWord)))"
            } else {
                problem = nil
            }
        } catch {
            problem = error.message
        }
        guard let problem else {
            if !responsive { logger.notice("sx127x answers again") }
            responsive = true
            stats.lastProgressNanoseconds = monotonicNanoseconds()
            // An edge missed while the flags were already set would otherwise never come again.
            if let dio0, (try? dio0.value()) == true {
                serviceInterrupts(timestamp: microsecondCounter())
            }
            return
        }
        stats.reinitialisations += 1
        logger.warning("sx127x: \(problem); setting the radio up again", metadata: ["reinitialisations": "\(stats.reinitialisations)"])
        do {
            try await initialise()
            logger.notice("sx127x receiving again")
        } catch {
            logger.error("sx127x: the radio does not answer: \(error.message)")
        }
    }

    // MARK: Registers

    private func read(_ address: UInt8) throws(HardwareError) -> UInt8 {
        guard let spi else { throw HardwareError(.invalidRequest, "the radio is not open") }
        return try spi.write([address & 0x7F], thenRead: 1)[0]
    }

    private func write(_ address: UInt8, _ values: UInt8...) throws(HardwareError) {
        guard let spi else { throw HardwareError(.invalidRequest, "the radio is not open") }
        try spi.write([address | 0x80] + values)
    }
}

/// Timing knobs of the SPI radio drivers; tests shorten them.
public struct RadioTiming: Sendable {
    /// How often the chip's identity and configuration are checked.
    public var healthCheckInterval: Duration
    /// How often the IRQ flags are read on a board without an interrupt line.
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
        self.preparationMicroseconds = preparationMicroseconds
        self.lateToleranceMicroseconds = lateToleranceMicroseconds
        self.healthCheckInterval = healthCheckInterval
        self.pollInterval = pollInterval
        self.minimumLeadMicroseconds = minimumLeadMicroseconds
        self.maximumLeadMicroseconds = maximumLeadMicroseconds
        self.frameBuffer = frameBuffer
    }
}

/// The local radios' timestamp counter: CLOCK_MONOTONIC in microseconds, wrapping at 2^32 like
/// a concentrator's `tmst`, and in the same time base as GPIO edge events.
public func microsecondCounter() -> UInt32 {
    UInt32(truncatingIfNeeded: monotonicNanoseconds() / 1000)
}

func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return digits.count == 1 ? "0" + digits : digits
}
