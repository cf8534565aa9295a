import Clocks
import HAL
import LoRaPHY
import Synchronization

/// A command-level simulation of an SX1262 in LoRa mode, on the mock SPI bus and virtual GPIO.
///
/// What is simulated, from the SX1261/2 datasheet (rev. 2.1, §8, §13):
/// - BUSY: high while the chip boots after NRESET, after every command for a few microseconds,
///   while it sleeps, while it wakes on a chip select, and while a test holds it; a command sent
///   while BUSY is high is ignored, as on the real chip, and counted. A host must wait for BUSY
///   to fall before each command. A cold sleep (SetSleep without the warm-start bit) loses the
///   configuration.
/// - The status byte (chip mode in bits 6:4, command status in bits 3:1) clocked out on every
///   byte that carries no data.
/// - SetStandby, SetSleep (a chip select wakes it), SetFs, SetPacketType/GetPacketType,
///   SetRfFrequency (f = RfFreq · 32 MHz / 2^25), SetModulationParams, SetPacketParams,
///   SetBufferBaseAddress, WriteBuffer/ReadBuffer, WriteRegister/ReadRegister (the LoRa sync
///   word at 0x0740–0x0741), SetDioIrqParams, GetIrqStatus/ClearIrqStatus, GetRxBufferStatus,
///   GetPacketStatus (RssiPkt = −s0/2, SnrPkt = s1/4, SignalRssiPkt = −s2/2), GetRssiInst,
///   GetDeviceErrors/ClearDeviceErrors, SetRx (single, continuous, with timeout), SetTx, SetCAD
///   (CadDone, never CadDetected: the air is quiet between frames), GetStatus.
///   Configuration commands (calibration, regulator, PA, TX parameters, TCXO, RF switch …) are
///   accepted and remembered. An unknown opcode sets the command status to 0x4 (processing error).
/// - IRQs are latched only when enabled in the IRQ mask; DIO1 follows the DIO1 mask.
public final class SimulatedSX1262: SPIPeripheral, AirListener {
    public struct Pins: Sendable {
        public var reset: UInt32?
        public var busy: UInt32?
        public var dio1: UInt32?

        public init(reset: UInt32? = nil, busy: UInt32? = nil, dio1: UInt32? = nil) {
            self.reset = reset
            self.busy = busy
            self.dio1 = dio1
        }
    }

    public enum Opcode {
        public static let getStatus: UInt8 = 0xC0
        public static let setSleep: UInt8 = 0x84
        public static let setStandby: UInt8 = 0x80
        public static let setFs: UInt8 = 0xC1
        public static let setTx: UInt8 = 0x83
        public static let setRx: UInt8 = 0x82
        public static let setPacketType: UInt8 = 0x8A
        public static let getPacketType: UInt8 = 0x11
        public static let setRfFrequency: UInt8 = 0x86
        public static let setModulationParams: UInt8 = 0x8B
        public static let setPacketParams: UInt8 = 0x8C
        public static let setBufferBaseAddress: UInt8 = 0x8F
        public static let writeBuffer: UInt8 = 0x0E
        public static let readBuffer: UInt8 = 0x1E
        public static let writeRegister: UInt8 = 0x0D
        public static let readRegister: UInt8 = 0x1D
        public static let setDioIrqParams: UInt8 = 0x08
        public static let getIrqStatus: UInt8 = 0x12
        public static let clearIrqStatus: UInt8 = 0x02
        public static let getRxBufferStatus: UInt8 = 0x13
        public static let getPacketStatus: UInt8 = 0x14
        public static let getRssiInst: UInt8 = 0x15
        public static let getDeviceErrors: UInt8 = 0x17
        public static let clearDeviceErrors: UInt8 = 0x07
        public static let setCAD: UInt8 = 0xC5
        /// Commands that only read: they leave the command status as it was.
        public static let queries: Set<UInt8> = [
            getStatus, getPacketType, readBuffer, readRegister, getIrqStatus, getRxBufferStatus,
            getPacketStatus, getRssiInst, getDeviceErrors,
        ]
        /// Accepted and remembered, with no effect the simulation models.
        public static let configuration: Set<UInt8> = [
            0x89, 0x98, 0x96, 0x95, 0x8E, 0x97, 0x9D, 0x93, 0xA0, 0x9F, 0x94, 0x88, 0xD1, 0xD2, 0x9E,
        ]
    }

    public enum IRQ {
        public static let txDone: UInt16 = 0x0001
        public static let rxDone: UInt16 = 0x0002
        public static let preambleDetected: UInt16 = 0x0004
        public static let syncWordValid: UInt16 = 0x0008
        public static let headerValid: UInt16 = 0x0010
        public static let headerError: UInt16 = 0x0020
        public static let crcError: UInt16 = 0x0040
        public static let cadDone: UInt16 = 0x0080
        public static let cadDetected: UInt16 = 0x0100
        public static let timeout: UInt16 = 0x0200
    }

    /// The chip mode of the status byte's bits 6:4.
    public enum ChipMode: UInt8, Sendable {
        case sleep = 0  // never seen in a status byte: a sleeping chip does not answer
        case standbyRC = 0x2
        case standbyXOSC = 0x3
        case fs = 0x4
        case rx = 0x5
        case tx = 0x6
    }

    /// The command status of the status byte's bits 3:1.
    public enum CommandStatus: UInt8, Sendable {
        case idle = 0x1
        case dataAvailable = 0x2
        case timeout = 0x3
        case processingError = 0x4
        case failure = 0x5
        case txDone = 0x6
    }

    public struct Counters: Sendable, Equatable {
        public var received = 0
        public var crcErrors = 0
        public var transmitted = 0
        public var resets = 0
        /// Commands that arrived while BUSY was high (and were therefore lost).
        public var commandsWhileBusy = 0
        public var unknownCommands = 0
    }

    private struct State {
        /// What the air holds on the tuned channel, as of this transaction (GetRssiInst).
        var channelRSSI = Air.noiseFloorDBm
        var mode = ChipMode.standbyRC
        var commandStatus = CommandStatus.idle
        var packetType: UInt8 = 0  // GFSK after reset
        var rfFrequency: UInt32 = 0
        var modulationParams = [UInt8](repeating: 0, count: 8)
        var packetParams = [UInt8](repeating: 0, count: 9)
        var txBase: UInt8 = 0
        var rxBase: UInt8 = 0
        var buffer = [UInt8](repeating: 0, count: 256)
        var registers: [UInt16: UInt8] = [:]
        var irqStatus: UInt16 = 0
        /// The host cleared interrupt bits since DIO1 was last driven: it goes low before it
        /// follows them again, so a bit raised again meanwhile still makes an edge, as on the chip.
        var irqCleared = false
        var irqMask: UInt16 = 0
        var dio1Mask: UInt16 = 0
        var rxLength: UInt8 = 0
        var rxStart: UInt8 = 0
        var packetStatus: [UInt8] = [0, 0, 0]
        var continuousRx = false
        var deviceErrors: UInt16 = 0
        var configuration: [UInt8: [UInt8]] = [:]
        var inReset = false
        var booting = false
        var waking = false
        /// Busy with the last command, for `commandBusyTime`.
        var working = false
        /// Bumped by every event that sets a busy flag, so a stale timer cannot clear a newer one.
        var busyToken = 0
        var heldBusy = false
        var hung = false
        var hangClearedByReset = true
        /// SetSleep without the warm-start bit: the configuration is lost on wake-up.
        var coldSleep = false
        /// Bumped on every mode change so a stale TxDone or RX timeout is ignored.
        var generation = 0
        var counters = Counters()

        var busy: Bool { inReset || booting || waking || working || heldBusy || mode == .sleep }
    }

    public let airName: String
    private let gpio: VirtualGPIOChip
    private let pins: Pins
    private let air: Air
    private let state = Mutex(State())
    /// How long the chip stays busy after NRESET is released (datasheet: 3.5 ms from power-up),
    /// and after a wake-up from sleep, in simulated time.
    public static let bootTime = Duration.microseconds(3500)
    public static let wakeTime = Duration.microseconds(340)
    /// How long BUSY stays high after an ordinary command (datasheet: a few to tens of µs).
    public static let commandBusyTime = Duration.microseconds(20)
    private let pinLock = Mutex(())

    public init(name: String = "sx1262", gpio: VirtualGPIOChip, pins: Pins, air: Air) {
        airName = name
        self.gpio = gpio
        self.pins = pins
        self.air = air
        state.withLock { Self.powerOn(&$0) }
        if let reset = pins.reset {
            gpio.setPull(reset, high: true)
            gpio.watch(reset) { [weak self] high in self?.resetLevelChanged(high: high) }
        }
        air.attach(self)
        updatePins()
    }

    // MARK: Test hooks

    /// Holds BUSY high, as a wedged chip would: commands are ignored until `releaseBusy()`, and
    /// a reset does not help.
    public func holdBusy() {
        state.withLock { $0.heldBusy = true }
        updatePins()
    }

    public func releaseBusy() {
        state.withLock { $0.heldBusy = false }
        updatePins()
    }

    /// Returns the chip to its power-on state, as a brown-out would, without the host touching
    /// NRESET: the driver finds its configuration gone and the chip in standby.
    public func glitch() {
        state.withLock { state in
            let heldBusy = state.heldBusy
            Self.powerOn(&state)
            state.heldBusy = heldBusy
            state.counters.resets += 1
        }
        updatePins()
    }

    /// Makes the chip stop answering until the next reset through NRESET, or for good when
    /// `survivesReset` is set, as a radio wedged beyond what its driver can do.
    public func hang(survivesReset: Bool = false) {
        state.withLock {
            $0.hung = true
            $0.hangClearedByReset = !survivesReset
        }
        updatePins()
    }

    public var counters: Counters { state.withLock { $0.counters } }
    public var chipMode: ChipMode { state.withLock { $0.mode } }
    public var isBusy: Bool { state.withLock { $0.busy } }
    public var frequencyHz: UInt32 { state.withLock { Self.frequency($0.rfFrequency) } }

    /// The parameters of the last configuration command with this opcode (SetTxParams …).
    public func configuration(_ opcode: UInt8) -> [UInt8]? {
        state.withLock { $0.configuration[opcode] }
    }

    // MARK: SPI

    public func spiTransaction(_ mosi: [UInt8]) -> [UInt8] {
        guard let opcode = mosi.first else { return [] }
        var effects = Effects()
        let channel = air.channelRSSI(at: frequencyHz)
        let miso = state.withLock { state -> [UInt8] in
            state.channelRSSI = channel
            if state.inReset || state.hung {
                return [UInt8](repeating: 0, count: mosi.count)
            }
            if state.mode == .sleep {
                // Chip select wakes the chip; the command itself is lost while it starts.
                if state.coldSleep {
                    let heldBusy = state.heldBusy
                    Self.powerOn(&state)
                    state.heldBusy = heldBusy
                }
                state.mode = .standbyRC
                state.waking = true
                state.busyToken += 1
                state.counters.commandsWhileBusy += 1
                effects.wake = state.busyToken
                return [UInt8](repeating: 0, count: mosi.count)
            }
            if state.busy {
                state.counters.commandsWhileBusy += 1
                return [UInt8](repeating: Self.status(state), count: mosi.count)
            }
            let miso = Self.execute(&state, opcode: opcode, mosi: mosi, effects: &effects, chip: self)
            if state.mode != .sleep {
                state.working = true
                state.busyToken += 1
                effects.commandDone = state.busyToken
            }
            return miso
        }
        perform(effects)
        return miso
    }

    private struct Effects {
        var transmit: (frame: AirFrame, generation: Int)?
        var rxTimeout: (delay: Duration, generation: Int)?
        var cad: Int?
        var wake: Int?
        var commandDone: Int?
    }

    private static func status(_ state: State) -> UInt8 {
        state.mode.rawValue << 4 | state.commandStatus.rawValue << 1
    }

    private static func execute(
        _ state: inout State, opcode: UInt8, mosi: [UInt8], effects: inout Effects, chip: SimulatedSX1262
    ) -> [UInt8] {
        let arguments = Array(mosi.dropFirst())
        var miso = [UInt8](repeating: status(state), count: mosi.count)
        var succeeded = true
        func need(_ count: Int) -> Bool {
            if arguments.count < count {
                state.commandStatus = .processingError
                succeeded = false
                return false
            }
            return true
        }
        func reply(_ data: [UInt8], at start: Int) {
            for (index, byte) in data.enumerated() where start + index < miso.count {
                miso[start + index] = byte
            }
        }
        switch opcode {
        case Opcode.getStatus:
            break
        case Opcode.setStandby:
            guard need(1) else { break }
            state.mode = arguments[0] == 0 ? .standbyRC : .standbyXOSC
            state.generation += 1
        case Opcode.setSleep:
            state.mode = .sleep
            state.coldSleep = (arguments.first ?? 0) & 0x04 == 0
            state.generation += 1
        case Opcode.setFs:
            state.mode = .fs
            state.generation += 1
        case Opcode.setPacketType:
            guard need(1) else { break }
            state.packetType = arguments[0]
        case Opcode.getPacketType:
            reply([state.packetType], at: 2)
        case Opcode.setRfFrequency:
            guard need(4) else { break }
            state.rfFrequency = arguments[0..<4].reduce(0) { $0 << 8 | UInt32($1) }
        case Opcode.setModulationParams:
            guard need(4) else { break }
            state.modulationParams = Array(arguments.prefix(8))
        case Opcode.setPacketParams:
            guard need(6) else { break }
            state.packetParams = Array(arguments.prefix(9))
        case Opcode.setBufferBaseAddress:
            guard need(2) else { break }
            state.txBase = arguments[0]
            state.rxBase = arguments[1]
        case Opcode.writeBuffer:
            guard need(1) else { break }
            let offset = Int(arguments[0])
            for (index, byte) in arguments.dropFirst().enumerated() {
                state.buffer[(offset + index) & 0xFF] = byte
            }
        case Opcode.readBuffer:
            guard need(2) else { break }
            let offset = Int(arguments[0])
            let data = (0..<max(mosi.count - 3, 0)).map { state.buffer[(offset + $0) & 0xFF] }
            reply(data, at: 3)
        case Opcode.writeRegister:
            guard need(3) else { break }
            let address = UInt16(arguments[0]) << 8 | UInt16(arguments[1])
            for (index, byte) in arguments.dropFirst(2).enumerated() {
                state.registers[address &+ UInt16(index)] = byte
            }
        case Opcode.readRegister:
            guard need(3) else { break }
            let address = UInt16(arguments[0]) << 8 | UInt16(arguments[1])
            let data = (0..<max(mosi.count - 4, 0)).map { state.registers[address &+ UInt16($0)] ?? 0 }
            reply(data, at: 4)
        case Opcode.setDioIrqParams:
            guard need(4) else { break }
            state.irqMask = UInt16(arguments[0]) << 8 | UInt16(arguments[1])
            state.dio1Mask = UInt16(arguments[2]) << 8 | UInt16(arguments[3])
        case Opcode.getIrqStatus:
            reply([UInt8(state.irqStatus >> 8), UInt8(state.irqStatus & 0xFF)], at: 2)
        case Opcode.clearIrqStatus:
            guard need(2) else { break }
            let clearing = UInt16(arguments[0]) << 8 | UInt16(arguments[1])
            if state.irqStatus & clearing != 0 { state.irqCleared = true }
            state.irqStatus &= ~clearing
        case Opcode.getRxBufferStatus:
            reply([state.rxLength, state.rxStart], at: 2)
        case Opcode.getPacketStatus:
            reply(state.packetStatus, at: 2)
        case Opcode.getRssiInst:
            // Signal power = −RssiInst/2 dBm (datasheet §13.5.7), while receiving.
            reply([state.mode == .rx ? UInt8(clampedInteger(-state.channelRSSI * 2, 0...255)) : 0xFF], at: 2)
        case Opcode.getDeviceErrors:
            reply([UInt8(state.deviceErrors >> 8), UInt8(state.deviceErrors & 0xFF)], at: 2)
        case Opcode.clearDeviceErrors:
            state.deviceErrors = 0
        case Opcode.setRx:
            guard need(3) else { break }
            let timeout = UInt32(arguments[0]) << 16 | UInt32(arguments[1]) << 8 | UInt32(arguments[2])
            state.mode = .rx
            state.generation += 1
            state.continuousRx = timeout == 0xFF_FFFF
            if timeout != 0 && timeout != 0xFF_FFFF {
                // The timeout counts steps of 15.625 µs.
                effects.rxTimeout = (.nanoseconds(Int64(timeout) * 15_625), state.generation)
            }
        case Opcode.setCAD:
            // Channel activity detection: the simulated air is quiet between frames.
            state.generation += 1
            effects.cad = state.generation
        case Opcode.setTx:
            guard need(3) else { break }
            guard state.packetType == 1, let modulation = modulation(state) else {
                state.commandStatus = .failure
                succeeded = false
                break
            }
            let length = Int(state.packetParams[3])
            let payload = (0..<length).map { state.buffer[(Int(state.txBase) + $0) & 0xFF] }
            state.mode = .tx
            state.generation += 1
            state.counters.transmitted += 1
            let frame = AirFrame(
                payload: payload,
                frequencyHz: frequency(state.rfFrequency),
                modulation: modulation,
                syncWord: syncWord(state),
                invertedIQ: state.packetParams[5] == 1,
                preambleLength: Int(state.packetParams[0]) << 8 | Int(state.packetParams[1]),
                hasCRC: state.packetParams[4] == 1,
                source: chip.airName
            )
            effects.transmit = (frame, state.generation)
        default:
            if Opcode.configuration.contains(opcode) {
                state.configuration[opcode] = arguments
            } else {
                state.commandStatus = .processingError
                state.counters.unknownCommands += 1
                succeeded = false
            }
        }
        if succeeded && !Opcode.queries.contains(opcode) {
            // A command carried out clears the status an earlier error or completion left.
            state.commandStatus = .idle
        }
        return miso
    }

    private func perform(_ effects: Effects) {
        if let (frame, generation) = effects.transmit {
            air.radioTransmitted(frame, by: self)
            air.schedule(after: frame.airtime.duration) { [weak self] in
                self?.finish(generation: generation, raising: IRQ.txDone, status: .txDone)
            }
        }
        if let (delay, generation) = effects.rxTimeout {
            air.schedule(after: delay) { [weak self] in
                self?.finish(generation: generation, raising: IRQ.timeout, status: .timeout)
            }
        }
        if let generation = effects.cad {
            air.schedule(after: .milliseconds(1)) { [weak self] in
                self?.finish(
                    generation: generation, raising: IRQ.cadDone, status: .idle, fromModes: [.standbyRC, .standbyXOSC])
            }
        }
        if let token = effects.wake {
            air.schedule(after: Self.wakeTime) { [weak self] in self?.endBusy(token) { $0.waking = false } }
        }
        if let token = effects.commandDone {
            air.schedule(after: Self.commandBusyTime) { [weak self] in self?.endBusy(token) { $0.working = false } }
        }
        updatePins()
    }

    /// Clears a busy flag, unless something newer has made the chip busy since.
    private func endBusy(_ token: Int, _ clear: (inout State) -> Void) {
        state.withLock { state in
            if state.busyToken == token { clear(&state) }
        }
        updatePins()
    }

    /// Ends a TX or an RX with timeout, unless the chip moved on since it began.
    private func finish(
        generation: Int, raising flag: UInt16, status: CommandStatus, fromModes: Set<ChipMode> = [.tx, .rx]
    ) {
        state.withLock { state in
            guard state.generation == generation, fromModes.contains(state.mode) else { return }
            Self.raise(&state, flag)
            state.mode = .standbyRC
            state.commandStatus = status
            state.generation += 1
        }
        updatePins()
    }

    private static func raise(_ state: inout State, _ flags: UInt16) {
        state.irqStatus |= flags & state.irqMask
    }

    // MARK: Air

    public func reception() -> AirReception? {
        state.withLock { state in
            guard !state.inReset, !state.hung, state.mode == .rx, state.packetType == 1,
                let modulation = Self.modulation(state)
            else { return nil }
            return AirReception(
                frequencyHz: Self.frequency(state.rfFrequency),
                spreadingFactor: modulation.spreadingFactor,
                bandwidth: modulation.bandwidth,
                syncWord: Self.syncWord(state),
                invertedIQ: state.packetParams[5] == 1,
                session: state.generation
            )
        }
    }

    public func hear(_ frame: AirFrame) {
        let heard = state.withLock { state -> Bool in
            guard !state.inReset, !state.hung, state.mode == .rx else { return false }
            let length = min(frame.payload.count, 255)
            for index in 0..<length {
                state.buffer[(Int(state.rxBase) + index) & 0xFF] = frame.payload[index]
            }
            state.rxLength = UInt8(length)
            state.rxStart = state.rxBase
            state.packetStatus = Self.encodePacketStatus(rssiDBm: frame.rssiDBm, snrDB: frame.snrDB)
            var flags = IRQ.rxDone | IRQ.preambleDetected | IRQ.syncWordValid | IRQ.headerValid
            if frame.hasCRC && !frame.crcValid {
                flags |= IRQ.crcError
                state.counters.crcErrors += 1
            }
            Self.raise(&state, flags)
            state.commandStatus = .dataAvailable
            state.counters.received += 1
            if !state.continuousRx {
                state.mode = .standbyRC
                state.generation += 1
            }
            return true
        }
        if heard { updatePins() }
    }

    /// GetPacketStatus's three bytes for a frame: RssiPkt and SignalRssiPkt in steps of −0.5 dB,
    /// SnrPkt in quarters of a dB (two's complement).
    public static func encodePacketStatus(rssiDBm: Double, snrDB: Double) -> [UInt8] {
        let rssi = UInt8(clampedInteger(-rssiDBm * 2, 0...255))
        let snrQuarter = clampedInteger(snrDB * 4, -128...127)
        let signal = snrDB < 0 ? rssiDBm + Double(snrQuarter) / 4 : rssiDBm
        let signalRssi = UInt8(clampedInteger(-signal * 2, 0...255))
        return [rssi, UInt8(bitPattern: Int8(snrQuarter)), signalRssi]
    }

    // MARK: Pins

    private func resetLevelChanged(high: Bool) {
        let booting = state.withLock { state -> Bool in
            if !high {
                state.inReset = true
                state.generation += 1
                return false
            }
            guard state.inReset else { return false }
            let heldBusy = state.heldBusy
            let hangSurvives = state.hung && !state.hangClearedByReset
            Self.powerOn(&state)
            state.heldBusy = heldBusy
            state.hung = hangSurvives
            state.hangClearedByReset = !hangSurvives
            state.counters.resets += 1
            state.booting = true
            state.busyToken += 1
            return true
        }
        updatePins()
        if booting {
            let token = state.withLock { $0.busyToken }
            air.schedule(after: Self.bootTime) { [weak self] in self?.endBusy(token) { $0.booting = false } }
        }
    }

    private func updatePins() {
        // Computed and driven under one lock, so two threads cannot drive stale levels last.
        pinLock.withLock { _ in
            let (busy, dio1, pulse) = state.withLock { state in
                defer { state.irqCleared = false }
                return (
                    state.busy || state.hung, !state.inReset && state.irqStatus & state.dio1Mask != 0, state.irqCleared
                )
            }
            if let pin = pins.busy { gpio.drive(pin, high: busy) }
            if pulse, let pin = pins.dio1 { gpio.drive(pin, high: false) }
            if let pin = pins.dio1 { gpio.drive(pin, high: dio1) }
        }
    }

    // MARK: Decoding

    private static func powerOn(_ state: inout State) {
        let counters = state.counters
        let generation = state.generation + 1
        state = State()
        state.counters = counters
        state.generation = generation
        // Power-on LoRa sync word: 0x1424 (private networks).
        state.registers[0x0740] = 0x14
        state.registers[0x0741] = 0x24
    }

    static func frequency(_ rfFrequency: UInt32) -> UInt32 {
        UInt32((UInt64(rfFrequency) * 32_000_000 + (1 << 24)) >> 25)
    }

    private static func syncWord(_ state: State) -> LoRaSyncWord {
        let value = UInt16(state.registers[0x0740] ?? 0x14) << 8 | UInt16(state.registers[0x0741] ?? 0x24)
        return LoRaSyncWord(sx126xRegisterValue: value)
    }

    /// The SetModulationParams bandwidth codes.
    static let bandwidthCodes: [UInt8: LoRaBandwidth] = [
        0x00: .khz7_8, 0x08: .khz10_4, 0x01: .khz15_6, 0x09: .khz20_8, 0x02: .khz31_25,
        0x0A: .khz41_7, 0x03: .khz62_5, 0x04: .khz125, 0x05: .khz250, 0x06: .khz500,
    ]

    private static func modulation(_ state: State) -> LoRaModulation? {
        guard let spreadingFactor = SpreadingFactor(rawValue: Int(state.modulationParams[0])),
            let bandwidth = bandwidthCodes[state.modulationParams[1]],
            let codingRate = CodingRate(rawValue: Int(state.modulationParams[2]))
        else { return nil }
        return LoRaModulation(spreadingFactor: spreadingFactor, bandwidth: bandwidth, codingRate: codingRate)
    }
}
