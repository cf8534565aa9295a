import HAL
import LoRaPHY
import Logging

/// The SX1261/SX1262 in LoRa mode: a single-channel receiver and transmitter over SPI, with
/// the BUSY handshake and RxDone/TxDone on DIO1.
///
/// The chip takes commands, not registers, and may only be spoken to while BUSY is low: every
/// command here waits for it first (up to 100 ms, then the chip is deemed not answering). Like
/// the SX127x driver it runs on its own thread, takes interrupts from kernel-stamped DIO1 edges
/// (or polls GetIrqStatus without a DIO1 line), and a health check sets the chip up again when
/// it stops answering or leaves receive mode on its own.
public actor SX126xRadio: Radio {
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
    private var busy: (any GPIOLine)?
    private var dio1: (any GPIOLine)?
    private var tasks: [Task<Void, Never>] = []
    private var stats = RadioStatistics()
    private var running = false
    private var responsive = false
    private var transmitting: (id: Int, continuation: CheckedContinuation<Bool, Never>)?
    private var queue = TransmitQueue()

    enum Opcode {
        static let getStatus: UInt8 = 0xC0
        static let setStandby: UInt8 = 0x80
        static let setSleep: UInt8 = 0x84
        static let setRx: UInt8 = 0x82
        static let setTx: UInt8 = 0x83
        static let setPacketType: UInt8 = 0x8A
        static let setRfFrequency: UInt8 = 0x86
        static let setModulationParams: UInt8 = 0x8B
        static let setPacketParams: UInt8 = 0x8C
        static let setBufferBaseAddress: UInt8 = 0x8F
        static let writeBuffer: UInt8 = 0x0E
        static let readBuffer: UInt8 = 0x1E
        static let writeRegister: UInt8 = 0x0D
        static let readRegister: UInt8 = 0x1D
        static let setDioIrqParams: UInt8 = 0x08
        static let getIrqStatus: UInt8 = 0x12
        static let clearIrqStatus: UInt8 = 0x02
        static let getRxBufferStatus: UInt8 = 0x13
        static let getPacketStatus: UInt8 = 0x14
        static let calibrate: UInt8 = 0x89
        static let calibrateImage: UInt8 = 0x98
        static let setRegulatorMode: UInt8 = 0x96
        static let setPaConfig: UInt8 = 0x95
        static let setTxParams: UInt8 = 0x8E
        static let setDIO3AsTCXOCtrl: UInt8 = 0x97
        static let setDIO2AsRfSwitchCtrl: UInt8 = 0x9D
    }

    enum IRQ {
        static let txDone: UInt16 = 0x0001
        static let rxDone: UInt16 = 0x0002
        static let headerError: UInt16 = 0x0020
        static let crcError: UInt16 = 0x0040
        static let timeout: UInt16 = 0x0200
        static let used: UInt16 = txDone | rxDone | headerError | crcError | timeout
    }

    /// SetModulationParams bandwidth codes.
    static let bandwidthCodes: [LoRaBandwidth: UInt8] = [
        .khz7_8: 0x00, .khz10_4: 0x08, .khz15_6: 0x01, .khz20_8: 0x09, .khz31_25: 0x02,
        .khz41_7: 0x0A, .khz62_5: 0x03, .khz125: 0x04, .khz250: 0x05, .khz500: 0x06,
    ]

    /// The LoRa sync word's register, and the register whose bit 2 must be cleared for inverted
    /// IQ and set otherwise (datasheet §15.4, "Optimizing the Inverted IQ Operation").
    static let syncWordRegister: UInt16 = 0x0740
    static let iqPolarityRegister: UInt16 = 0x0736
    static let txModulationRegister: UInt16 = 0x0889

    public init(
        board: any BoardHardware, configuration: RadioConfiguration, policy: any TransmitPolicy,
        logger: Logger = Logger(label: "hotspotd.radio"), timing: RadioTiming = RadioTiming()
    ) throws(RadioError) {
        guard board.profile.radio.family == .sx126x else {
            throw RadioError("the sx126x driver cannot drive a \(board.profile.radio.displayName)")
        }
        do {
            executor = try RadioExecutor(name: "sx126x")
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

    /// The power the chip will use: what was asked, within −17…14 dBm (SX1261 with the +14 dBm
    /// PA setting) or −9…22 dBm (SX1262).
    private func chipPower(_ dBm: Int) -> Int {
        board.profile.radio == .sx1261 ? min(max(dBm, -17), 14) : min(max(dBm, -9), 22)
    }

    // MARK: Life cycle

    public func start() async throws(RadioError) {
        guard !running else { return }
        do {
            reset = try board.requestLine(.reset, .output(initial: false))
            busy = try board.requestLine(.busy, .input(edges: .none))
            dio1 = try board.requestLineIfPresent(.dio1, .input(edges: .rising))
            spi = try board.openSPI()
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
        if let dio1, let edges = try? dio1.edgeEvents() {
            tasks.append(Task { await self.serviceEdges(edges) })
        } else {
            logger.info("no DIO1 line: polling the IRQ status", metadata: ["interval": "\(timing.pollInterval)"])
            tasks.append(Task { await self.pollInterrupts() })
        }
        tasks.append(Task { await self.checkHealthPeriodically() })
        logger.info("sx126x receiving", metadata: [
            "frequency": "\(configuration.frequencyHz)", "data_rate": "\(configuration.dataRate)",
        ])
    }

    public func stop() async {
        guard running else { return }
        running = false
        for task in tasks { task.cancel() }
        tasks.removeAll()
        _ = try? command(Opcode.setSleep, [0x04])  // warm start keeps the configuration
        transmitting?.continuation.resume(returning: false)
        transmitting = nil
        releaseHardware()
        output.finish()
    }

    private func releaseHardware() {
        dio1?.release()
        busy?.release()
        reset?.release()
        dio1 = nil
        busy = nil
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

    private func initialise() async throws(RadioError) {
        responsive = false
        do {
            if let reset {
                try reset.setValue(true)
                try await Task.sleep(for: .milliseconds(max(board.profile.reset.pulseMilliseconds, 1)))
                try reset.setValue(false)
                try await Task.sleep(for: .milliseconds(board.profile.reset.recoveryMilliseconds))
            }
            let status = try command(Opcode.getStatus, reading: 1)[1]
            let mode = (status >> 4) & 0x07
            guard status != 0x00 && status != 0xFF, mode == 2 || mode == 3 else {
                throw RadioError("the SX126x on \(spi?.path ?? "SPI") does not answer (GetStatus 0x\(hex(status)))")
            }
            try command(Opcode.setStandby, [0x00])
            if let voltage = board.profile.frontEnd.tcxoVoltage {
                // DIO3 powers the TCXO; 5 ms (320 × 15.625 µs) to start; then recalibrate with it.
                try command(Opcode.setDIO3AsTCXOCtrl, [Self.tcxoCode(voltage), 0x00, 0x01, 0x40])
                try command(Opcode.calibrate, [0x7F])
            }
            if board.profile.frontEnd.dio2RFSwitch {
                try command(Opcode.setDIO2AsRfSwitchCtrl, [0x01])
            }
            try command(Opcode.setRegulatorMode, [0x01])  // DC-DC
            try command(Opcode.setPacketType, [0x01])  // LoRa
            try command(Opcode.calibrateImage, Self.imageCalibration(frequencyHz: configuration.frequencyHz))
            try command(Opcode.setBufferBaseAddress, [0x00, 0x00])
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

    private func configureReceiver() throws(HardwareError) {
        try command(Opcode.setStandby, [0x00])
        try setModulation(frequencyHz: configuration.frequencyHz, dataRate: configuration.dataRate, codingRate: configuration.codingRate)
        try setPacketParameters(preamble: configuration.preambleLength, payloadLength: 0xFF, crc: true, invertedIQ: configuration.invertedIQ)
        let syncWord = configuration.syncWord.sx126xRegisterValue
        try writeRegister(Self.syncWordRegister, [UInt8(syncWord >> 8), UInt8(syncWord & 0xFF)])
        let mask = [UInt8(IRQ.used >> 8), UInt8(IRQ.used & 0xFF)]
        try command(Opcode.setDioIrqParams, mask + mask + [0, 0, 0, 0])
        try command(Opcode.clearIrqStatus, [0xFF, 0xFF])
        try command(Opcode.setRx, [0xFF, 0xFF, 0xFF])  // continuous
    }

    private func setModulation(frequencyHz: UInt32, dataRate: LoRaDataRate, codingRate: CodingRate) throws(HardwareError) {
        let steps = UInt32((UInt64(frequencyHz) << 25) / 32_000_000)
        try command(Opcode.setRfFrequency, [UInt8(steps >> 24), UInt8((steps >> 16) & 0xFF), UInt8((steps >> 8) & 0xFF), UInt8(steps & 0xFF)])
        let lowDataRate: UInt8 = LoRaAirtime.requiresLowDataRateOptimize(dataRate.modulation()) ? 1 : 0
        try command(Opcode.setModulationParams, [
            UInt8(dataRate.spreadingFactor.rawValue), Self.bandwidthCodes[dataRate.bandwidth] ?? 0x04,
            UInt8(codingRate.rawValue), lowDataRate,
        ])
    }

    private func setPacketParameters(preamble: Int, payloadLength: Int, crc: Bool, invertedIQ: Bool) throws(HardwareError) {
        try command(Opcode.setPacketParams, [
            UInt8(truncatingIfNeeded: preamble >> 8), UInt8(truncatingIfNeeded: preamble),
            0x00,  // explicit header
            UInt8(truncatingIfNeeded: payloadLength), crc ? 0x01 : 0x00, invertedIQ ? 0x01 : 0x00,
        ])
        let polarity = try readRegister(Self.iqPolarityRegister, count: 1)[0]
        try writeRegister(Self.iqPolarityRegister, [invertedIQ ? polarity & ~0x04 : polarity | 0x04])
    }

    /// CalibrateImage's band for a frequency (datasheet §9.2.1, table 9-2).
    static func imageCalibration(frequencyHz: UInt32) -> [UInt8] {
        switch frequencyHz {
        case 902_000_000...: [0xE1, 0xE9]
        case 863_000_000...: [0xD7, 0xDB]
        case 779_000_000...: [0xC1, 0xC5]
        case 470_000_000...: [0x75, 0x81]
        default: [0x6B, 0x6F]
        }
    }

    /// SetDIO3AsTCXOCtrl's voltage code: 1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3 V → 0 to 7.
    static func tcxoCode(_ voltage: Double) -> UInt8 {
        let voltages = [1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3]
        return UInt8(voltages.firstIndex { abs($0 - voltage) < 0.001 } ?? 2)
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
        do {
            let reply = try command(Opcode.getIrqStatus, reading: 3)
            let flags = UInt16(reply[2]) << 8 | UInt16(reply[3])
            guard flags != 0 else { return }
            try command(Opcode.clearIrqStatus, [reply[2], reply[3]])
            if flags & IRQ.rxDone != 0 {
                try receiveFrame(crcError: flags & IRQ.crcError != 0, timestamp: timestamp)
            }
            if flags & IRQ.txDone != 0, let pending = transmitting {
                transmitting = nil
                pending.continuation.resume(returning: true)
            }
        } catch {
            logger.warning("sx126x: reading the IRQ status failed", metadata: ["error": "\(error)"])
        }
    }

    private func receiveFrame(crcError: Bool, timestamp: UInt32) throws(HardwareError) {
        let buffer = try command(Opcode.getRxBufferStatus, reading: 3)
        let length = Int(buffer[2])
        let payload = length > 0 ? Array(try command(Opcode.readBuffer, [buffer[3], 0x00], reading: length)[3...]) : []
        let status = try command(Opcode.getPacketStatus, reading: 4)
        let rssi = -Double(status[2]) / 2
        let snr = Double(Int8(bitPattern: status[3])) / 4
        let frame = RadioFrame(
            payload: payload,
            frequencyHz: configuration.frequencyHz,
            dataRate: configuration.dataRate,
            codingRate: configuration.codingRate,
            rssiDBm: rssi,
            snrDB: snr,
            crc: crcError ? .bad : .ok,
            timestamp: timestamp,
            receivedAt: wallClockNanoseconds()
        )
        stats.framesReceived += 1
        stats.lastProgressNanoseconds = monotonicNanoseconds()
        if crcError {
            stats.crcErrors += 1
            logger.debug("sx126x: CRC error", metadata: ["size": "\(length)", "rssi": "\(rssi)"])
        }
        if case .dropped = output.yield(frame) {
            stats.framesDropped += 1
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
                try command(Opcode.setTx, [0x00, 0x00, 0x00])
                sent = await awaitTxDone(id: admission.id, timeout: airtime.duration + .milliseconds(500))
                outcome = sent ? .sent(powerDBm: chipPower(request.powerDBm)) : .failed("no TxDone from the radio within \(airtime.milliseconds + 500) ms")
            }
        } catch {
            logger.warning("sx126x: transmission failed", metadata: ["error": "\(error)"])
            outcome = .failed(error.message)
        }
        do {
            try configureReceiver()
        } catch {
            logger.warning("sx126x: returning to receive failed", metadata: ["error": "\(error)"])
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
        try command(Opcode.setStandby, [0x00])
        try setModulation(frequencyHz: request.frequencyHz, dataRate: request.dataRate, codingRate: request.codingRate)
        try setPacketParameters(preamble: request.preambleLength, payloadLength: request.payload.count, crc: request.crc, invertedIQ: request.invertedIQ)
        if board.profile.radio == .sx1261 {
            try command(Opcode.setPaConfig, [0x04, 0x00, 0x01, 0x01])  // the +14 dBm row
        } else {
            try command(Opcode.setPaConfig, [0x04, 0x07, 0x00, 0x01])  // up to 22 dBm
        }
        let power = chipPower(request.powerDBm)
        try command(Opcode.setTxParams, [UInt8(bitPattern: Int8(power)), 0x04])  // 200 µs ramp
        try command(Opcode.writeBuffer, [0x00] + request.payload)
        // Datasheet §15.1: TX modulation quality needs bit 2 of 0x0889 cleared at 500 kHz, set otherwise.
        let quality = try readRegister(Self.txModulationRegister, count: 1)[0]
        try writeRegister(Self.txModulationRegister, [request.dataRate.bandwidth == .khz500 ? quality & ~0x04 : quality | 0x04])
        try command(Opcode.clearIrqStatus, [0xFF, 0xFF])
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
            if dio1 == nil { serviceInterrupts(timestamp: microsecondCounter()) }
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

    /// Confirms the chip answers, is receiving and holds its sync word; sets it up again if not.
    public func checkHealth() async {
        guard running, !queue.isBusy else { return }
        let problem: String?
        do {
            let status = try command(Opcode.getStatus, reading: 1)[1]
            let syncWord = try readRegister(Self.syncWordRegister, count: 2)
            let expected = configuration.syncWord.sx126xRegisterValue
            if status == 0x00 || status == 0xFF {
                problem = "GetStatus reads 0x\(hex(status))"
            } else if (status >> 4) & 0x07 != 5 || syncWord != [UInt8(expected >> 8), UInt8(expected & 0xFF)] {
                problem = "configuration lost (GetStatus 0x\(hex(status)), sync word 0x\(hex(syncWord[0]))\(hex(syncWord[1])))"
            } else {
                problem = nil
            }
        } catch {
            problem = error.message
        }
        guard let problem else {
            if !responsive { logger.notice("sx126x answers again") }
            responsive = true
            stats.lastProgressNanoseconds = monotonicNanoseconds()
            if let dio1, (try? dio1.value()) == true {
                serviceInterrupts(timestamp: microsecondCounter())
            }
            return
        }
        stats.reinitialisations += 1
        logger.warning("sx126x: \(problem); setting the radio up again", metadata: ["reinitialisations": "\(stats.reinitialisations)"])
        do {
            try await initialise()
            logger.notice("sx126x receiving again")
        } catch {
            logger.error("sx126x: the radio does not answer: \(error.message)")
        }
    }

    // MARK: Commands

    /// Waits for BUSY to fall, then sends one command; returns the bytes clocked in.
    @discardableResult
    private func command(_ opcode: UInt8, _ arguments: [UInt8] = [], reading count: Int = 0) throws(HardwareError) -> [UInt8] {
        guard let spi else { throw HardwareError(.invalidRequest, "the radio is not open") }
        try waitWhileBusy()
        return try spi.exchange([opcode] + arguments + [UInt8](repeating: 0, count: count))
    }

    private func readRegister(_ address: UInt16, count: Int) throws(HardwareError) -> [UInt8] {
        let reply = try command(Opcode.readRegister, [UInt8(address >> 8), UInt8(address & 0xFF), 0x00], reading: count)
        return Array(reply[4...])
    }

    private func writeRegister(_ address: UInt16, _ values: [UInt8]) throws(HardwareError) {
        try command(Opcode.writeRegister, [UInt8(address >> 8), UInt8(address & 0xFF)] + values)
    }

    /// BUSY falls within microseconds after most commands and within milliseconds after a
    /// reset or calibration; past 100 ms the chip is not answering.
    private func waitWhileBusy() throws(HardwareError) {
        guard let busy else { return }
        let deadline = monotonicNanoseconds() + 100_000_000
        var spins = 0
        while try busy.value() {
            if monotonicNanoseconds() > deadline {
                throw HardwareError(.timeout, "\(busy.name) stayed high for 100 ms: the SX126x is not answering")
            }
            spins += 1
            if spins > 100 { sleepMicroseconds(50) }
        }
    }
}
