import Clocks
import HAL
import LoRaPHY
import Synchronization

/// A register-level simulation of an SX1276 in LoRa mode, on the mock SPI bus and virtual GPIO.
///
/// What is simulated, from the SX1276 datasheet (rev. 7, §4.1 and §6.4):
/// - SPI access: the first byte is the address with bit 7 set for a write; the address then
///   increments on every byte, except for RegFifo (0x00), where each byte reads or writes the FIFO
///   at RegFifoAddrPtr and advances that pointer.
/// - RegOpMode (0x01): SLEEP, STDBY, TX, RXCONTINUOUS, RXSINGLE and CAD; the LongRangeMode bit
///   changes only in (or on entering) SLEEP; entering SLEEP clears the FIFO.
/// - RegFrf (0x06–0x08): f = Frf · 32 MHz / 2^19. RegModemConfig1/2/3 (0x1D, 0x1E, 0x26):
///   bandwidth, coding rate, header mode, spreading factor, payload CRC.
/// - The 256-byte FIFO with RegFifoAddrPtr, RegFifoTxBaseAddr, RegFifoRxBaseAddr,
///   RegFifoRxCurrentAddr and RegRxNbBytes; TX sends RegPayloadLength bytes from the TX base.
/// - RegIrqFlags (0x12; writing 1 clears a flag) and RegIrqFlagsMask (0x11; a masked IRQ is not
///   raised); DIO0 and DIO1 follow RegDioMapping1 (0x40).
/// - RegPktSnrValue (0x19, SNR × 4, two's complement) and RegPktRssiValue (0x1A), encoded so that
///   the datasheet's §5.5.5 formulas give back the frame's RSSI: −157 + PacketRssi + SNR (SNR < 0),
///   −157 + 16/15 · PacketRssi (SNR ≥ 0) on the HF port; −164 on the LF port (below 525 MHz).
/// - RegSyncWord (0x39) and RegInvertIQ (0x33: bit 6 inverts RX, bit 0 clear inverts TX) decide
///   what the radio hears and how its transmissions go out.
/// - RegVersion (0x42) = 0x12. NRESET (active low) restores the power-on values.
///
/// One register bank holds the LoRa page's values; FSK mode is not simulated (the radio hears
/// and sends nothing in it). RXSINGLE does not time out.
public final class SimulatedSX1276: SPIPeripheral, AirListener {
    /// The host lines the chip's pins are wired to; nil for an unconnected pin.
    public struct Pins: Sendable {
        public var reset: UInt32?
        public var dio0: UInt32?
        public var dio1: UInt32?

        public init(reset: UInt32? = nil, dio0: UInt32? = nil, dio1: UInt32? = nil) {
            self.reset = reset
            self.dio0 = dio0
            self.dio1 = dio1
        }
    }

    public enum Register {
        public static let fifo: UInt8 = 0x00
        public static let opMode: UInt8 = 0x01
        public static let frfMsb: UInt8 = 0x06
        public static let frfMid: UInt8 = 0x07
        public static let frfLsb: UInt8 = 0x08
        public static let paConfig: UInt8 = 0x09
        public static let fifoAddrPtr: UInt8 = 0x0D
        public static let fifoTxBaseAddr: UInt8 = 0x0E
        public static let fifoRxBaseAddr: UInt8 = 0x0F
        public static let fifoRxCurrentAddr: UInt8 = 0x10
        public static let irqFlagsMask: UInt8 = 0x11
        public static let irqFlags: UInt8 = 0x12
        public static let rxNbBytes: UInt8 = 0x13
        public static let modemStat: UInt8 = 0x18
        public static let pktSnrValue: UInt8 = 0x19
        public static let pktRssiValue: UInt8 = 0x1A
        public static let rssiValue: UInt8 = 0x1B
        public static let hopChannel: UInt8 = 0x1C
        public static let modemConfig1: UInt8 = 0x1D
        public static let modemConfig2: UInt8 = 0x1E
        public static let preambleMsb: UInt8 = 0x20
        public static let preambleLsb: UInt8 = 0x21
        public static let payloadLength: UInt8 = 0x22
        public static let maxPayloadLength: UInt8 = 0x23
        public static let fifoRxByteAddr: UInt8 = 0x25
        public static let modemConfig3: UInt8 = 0x26
        public static let invertIQ: UInt8 = 0x33
        public static let syncWord: UInt8 = 0x39
        public static let invertIQ2: UInt8 = 0x3B
        public static let dioMapping1: UInt8 = 0x40
        public static let dioMapping2: UInt8 = 0x41
        public static let version: UInt8 = 0x42
    }

    public enum Mode: UInt8, Sendable {
        case sleep = 0
        case standby = 1
        case fsTx = 2
        case tx = 3
        case fsRx = 4
        case rxContinuous = 5
        case rxSingle = 6
        case cad = 7
    }

    public enum IRQ {
        public static let rxTimeout: UInt8 = 0x80
        public static let rxDone: UInt8 = 0x40
        public static let payloadCrcError: UInt8 = 0x20
        public static let validHeader: UInt8 = 0x10
        public static let txDone: UInt8 = 0x08
        public static let cadDone: UInt8 = 0x04
        public static let fhssChangeChannel: UInt8 = 0x02
        public static let cadDetected: UInt8 = 0x01
    }

    /// What the simulation counted, for tests.
    public struct Counters: Sendable, Equatable {
        public var received = 0
        public var crcErrors = 0
        public var transmitted = 0
        public var resets = 0
        /// Messages that arrived while the chip was in reset or hung.
        public var ignoredMessages = 0
    }

    private struct State {
        var registers = [UInt8](repeating: 0, count: 128)
        var fifo = [UInt8](repeating: 0, count: 256)
        var inReset = false
        var hung = false
        var hangClearedByReset = true
        /// Bumped whenever a transmission is started or abandoned, so a stale TxDone is ignored.
        var transmission = 0
        /// Bumped whenever the radio starts receiving.
        var rxSession = 0
        /// A received frame waits in the FIFO: the host has not read its last byte yet.
        var unreadFrame = false
        /// The host cleared interrupt flags since the DIO lines were last driven: they must go
        /// low before they follow the flags again, or a flag raised again meanwhile would not
        /// make the edge the real chip makes.
        var flagsCleared = false
        var counters = Counters()
    }

    public let airName: String
    private let gpio: VirtualGPIOChip
    private let pins: Pins
    private let air: Air
    private let version: UInt8
    private let state = Mutex(State())
    /// Held while DIO levels are computed and driven, so two threads cannot drive them out of order.
    private let pinLock = Mutex(())

    public init(name: String = "sx1276", gpio: VirtualGPIOChip, pins: Pins, air: Air, version: UInt8 = 0x12) {
        self.airName = name
        self.gpio = gpio
        self.pins = pins
        self.air = air
        self.version = version
        state.withLock { Self.powerOn(&$0, version: version) }
        if let reset = pins.reset {
            // NRESET has a pull-up inside the chip: a host that leaves it alone lets the chip run.
            gpio.setPull(reset, high: true)
            gpio.watch(reset) { [weak self] high in self?.resetLevelChanged(high: high) }
        }
        air.attach(self)
    }

    // MARK: Test hooks

    /// Makes the chip stop answering: SPI reads return zeros and nothing is received, as when a
    /// radio wedges. A reset through NRESET revives it unless `survivesReset` is set.
    public func hang(survivesReset: Bool = false) {
        state.withLock {
            $0.hung = true
            $0.hangClearedByReset = !survivesReset
        }
        updateDIOs()
    }

    /// Ends a hang made with `survivesReset`.
    public func recover() {
        state.withLock { $0.hung = false }
    }

    /// Returns every register to its power-on value, as a brown-out would, without the host
    /// touching NRESET: the driver finds its configuration gone.
    public func glitch() {
        state.withLock {
            Self.powerOn(&$0, version: version)
            $0.counters.resets += 1
        }
        air.frameReadOut()  // the FIFO's frame is gone
        updateDIOs()
    }

    public var counters: Counters {
        state.withLock { $0.counters }
    }

    /// A register's value, read without the SPI side effects (the FIFO pointer does not move).
    public func peekRegister(_ address: UInt8) -> UInt8 {
        state.withLock { $0.registers[Int(address & 0x7F)] }
    }

    public var mode: Mode {
        state.withLock { Mode(rawValue: $0.registers[1] & 0x07)! }
    }

    public var isLoRa: Bool {
        state.withLock { $0.registers[1] & 0x80 != 0 }
    }

    /// The carrier frequency the registers hold, in Hz.
    public var frequencyHz: UInt32 {
        state.withLock { Self.frequency(of: $0.registers) }
    }

    // MARK: SPI

    public func spiTransaction(_ mosi: [UInt8]) -> [UInt8] {
        guard let first = mosi.first else { return [] }
        var effects = Effects()
        // RegRssiValue: the channel as the air has it now (read before the chip's lock).
        let channel = air.channelRSSI(at: frequencyHz)
        let miso = state.withLock { state -> [UInt8] in
            var miso = [UInt8](repeating: 0, count: mosi.count)
            if state.inReset || state.hung {
                state.counters.ignoredMessages += 1
                return miso
            }
            let hadUnreadFrame = state.unreadFrame
            defer { effects.frameReadOut = hadUnreadFrame && !state.unreadFrame }
            let write = first & 0x80 != 0
            var address = first & 0x7F
            for index in 1..<mosi.count {
                if write {
                    Self.write(&state, address: address, value: mosi[index], effects: &effects, chip: self)
                } else if address == Register.rssiValue {
                    // RSSI = −157 + RssiValue on the HF port, −164 on the LF port (§5.5.5), while receiving.
                    let receiving = state.registers[1] & 0x07 == Mode.rxContinuous.rawValue
                    let offset = Self.rssiOffset(frequencyHz: Self.frequency(of: state.registers))
                    miso[index] = receiving ? UInt8(clampedInteger(channel - offset, 0...255)) : 0
                } else {
                    miso[index] = Self.read(&state, address: address)
                }
                if address != Register.fifo { address = (address + 1) & 0x7F }
            }
            return miso
        }
        perform(effects)
        return miso
    }

    private struct Effects {
        var transmit: (frame: AirFrame, generation: Int)?
        var cad = false
        var dioChanged = false
        var frameReadOut = false
    }

    private static func read(_ state: inout State, address: UInt8) -> UInt8 {
        if address == Register.fifo {
            guard state.registers[1] & 0x07 != Mode.sleep.rawValue else { return 0 }
            let pointer = Int(state.registers[Int(Register.fifoAddrPtr)])
            let next = UInt8((pointer + 1) & 0xFF)
            state.registers[Int(Register.fifoAddrPtr)] = next
            if state.unreadFrame && next == state.registers[Int(Register.fifoRxByteAddr)] {
                state.unreadFrame = false
            }
            return state.fifo[pointer]
        }
        return state.registers[Int(address)]
    }

    private static let readOnly: Set<UInt8> = [
        Register.fifoRxCurrentAddr, Register.rxNbBytes, 0x14, 0x15, 0x16, 0x17, Register.modemStat,
        Register.pktSnrValue, Register.pktRssiValue, Register.rssiValue, Register.hopChannel,
        Register.fifoRxByteAddr, Register.version,
    ]

    private static func write(
        _ state: inout State, address: UInt8, value: UInt8, effects: inout Effects, chip: SimulatedSX1276
    ) {
        switch address {
        case Register.fifo:
            guard state.registers[1] & 0x07 != Mode.sleep.rawValue else { return }
            let pointer = Int(state.registers[Int(Register.fifoAddrPtr)])
            state.fifo[pointer] = value
            state.registers[Int(Register.fifoAddrPtr)] = UInt8((pointer + 1) & 0xFF)
        case Register.opMode:
            setOpMode(&state, value: value, effects: &effects, chip: chip)
            effects.dioChanged = true
        case Register.irqFlags:
            if state.registers[Int(Register.irqFlags)] & value != 0 { state.flagsCleared = true }
            state.registers[Int(Register.irqFlags)] &= ~value
            effects.dioChanged = true
        case Register.dioMapping1, Register.irqFlagsMask:
            state.registers[Int(address)] = value
            effects.dioChanged = true
        case let address where readOnly.contains(address):
            break
        default:
            state.registers[Int(address)] = value
        }
    }

    private static func setOpMode(_ state: inout State, value: UInt8, effects: inout Effects, chip: SimulatedSX1276) {
        let old = state.registers[1]
        let oldMode = Mode(rawValue: old & 0x07)!
        // LongRangeMode changes only in SLEEP, or with the write that enters SLEEP (as drivers
        // such as arduino-LoRa switch a freshly reset chip to LoRa in one write).
        let longRange = oldMode == .sleep || value & 0x07 == Mode.sleep.rawValue ? value & 0x80 : old & 0x80
        state.registers[1] = (value & 0x7F) | longRange
        let mode = Mode(rawValue: value & 0x07)!
        if mode != .tx && oldMode == .tx {
            state.transmission += 1  // a transmission cut short never completes
        }
        if mode == .sleep {
            state.fifo = [UInt8](repeating: 0, count: 256)
        }
        if mode != .rxContinuous && mode != .rxSingle {
            state.unreadFrame = false  // left behind: a transmission or sleep overwrites it
        }
        if (mode == .rxContinuous || mode == .rxSingle) && mode != oldMode {
            state.rxSession += 1
        }
        guard longRange != 0 else { return }
        switch mode {
        case .tx where oldMode != .tx:
            let base = Int(state.registers[Int(Register.fifoTxBaseAddr)])
            let length = Int(state.registers[Int(Register.payloadLength)])
            let payload = (0..<length).map { state.fifo[(base + $0) & 0xFF] }
            guard let modulation = modulation(of: state.registers) else {
                state.registers[1] = (state.registers[1] & 0xF8) | Mode.standby.rawValue
                return
            }
            let frame = AirFrame(
                payload: payload,
                frequencyHz: frequency(of: state.registers),
                modulation: modulation,
                syncWord: LoRaSyncWord(rawValue: state.registers[Int(Register.syncWord)]),
                invertedIQ: state.registers[Int(Register.invertIQ)] & 0x01 == 0,
                preambleLength: Int(state.registers[Int(Register.preambleMsb)]) << 8
                    | Int(state.registers[Int(Register.preambleLsb)]),
                hasCRC: state.registers[Int(Register.modemConfig2)] & 0x04 != 0,
                source: chip.airName
            )
            state.transmission += 1
            state.counters.transmitted += 1
            effects.transmit = (frame, state.transmission)
        case .cad:
            effects.cad = true
        default:
            break
        }
    }

    private func perform(_ effects: Effects) {
        if let (frame, generation) = effects.transmit {
            air.radioTransmitted(frame, by: self)
            air.schedule(after: frame.airtime.duration) { [weak self] in
                self?.transmissionEnded(generation: generation)
            }
        }
        if effects.cad {
            // Channel activity detection: the simulated air is quiet between frames.
            air.schedule(after: .milliseconds(1)) { [weak self] in
                self?.raise(IRQ.cadDone, thenMode: .standby, from: .cad)
            }
        }
        if effects.frameReadOut { air.frameReadOut() }
        // Only a write to the mode, the flags or their mapping moves a DIO line.
        if effects.dioChanged { updateDIOs() }
    }

    private func transmissionEnded(generation: Int) {
        let done = state.withLock { state -> Bool in
            guard state.transmission == generation, state.registers[1] & 0x07 == Mode.tx.rawValue else { return false }
            Self.raise(&state, IRQ.txDone)
            state.registers[1] = (state.registers[1] & 0xF8) | Mode.standby.rawValue
            return true
        }
        if done { updateDIOs() }
    }

    private func raise(_ flag: UInt8, thenMode next: Mode, from expected: Mode) {
        state.withLock { state in
            guard state.registers[1] & 0x07 == expected.rawValue else { return }
            Self.raise(&state, flag)
            state.registers[1] = (state.registers[1] & 0xF8) | next.rawValue
        }
        updateDIOs()
    }

    private static func raise(_ state: inout State, _ flags: UInt8) {
        state.registers[Int(Register.irqFlags)] |= flags & ~state.registers[Int(Register.irqFlagsMask)]
    }

    // MARK: Air

    public func reception() -> AirReception? {
        state.withLock { state in
            guard !state.inReset, !state.hung, state.registers[1] & 0x80 != 0 else { return nil }
            let mode = state.registers[1] & 0x07
            guard mode == Mode.rxContinuous.rawValue || mode == Mode.rxSingle.rawValue,
                let modulation = Self.modulation(of: state.registers)
            else { return nil }
            return AirReception(
                frequencyHz: Self.frequency(of: state.registers),
                spreadingFactor: modulation.spreadingFactor,
                bandwidth: modulation.bandwidth,
                syncWord: LoRaSyncWord(rawValue: state.registers[Int(Register.syncWord)]),
                invertedIQ: state.registers[Int(Register.invertIQ)] & 0x40 != 0,
                session: state.rxSession
            )
        }
    }

    public var holdsUnreadFrame: Bool {
        state.withLock { $0.unreadFrame }
    }

    public func hear(_ frame: AirFrame) {
        let heard = state.withLock { state -> Bool in
            let mode = state.registers[1] & 0x07
            guard !state.inReset, !state.hung, mode == Mode.rxContinuous.rawValue || mode == Mode.rxSingle.rawValue
            else { return false }
            let base = Int(state.registers[Int(Register.fifoRxBaseAddr)])
            let length = min(frame.payload.count, 255)
            for index in 0..<length {
                state.fifo[(base + index) & 0xFF] = frame.payload[index]
            }
            state.registers[Int(Register.fifoRxCurrentAddr)] = UInt8(base)
            state.registers[Int(Register.fifoRxByteAddr)] = UInt8((base + length) & 0xFF)
            state.registers[Int(Register.rxNbBytes)] = UInt8(length)
            let (snr, rssi) = Self.encodeSignal(
                rssiDBm: frame.rssiDBm, snrDB: frame.snrDB, frequencyHz: Self.frequency(of: state.registers))
            state.registers[Int(Register.pktSnrValue)] = snr
            state.registers[Int(Register.pktRssiValue)] = rssi
            state.registers[Int(Register.hopChannel)] = frame.hasCRC ? 0x40 : 0x00
            var flags = IRQ.rxDone | IRQ.validHeader
            if frame.hasCRC && !frame.crcValid {
                flags |= IRQ.payloadCrcError
                state.counters.crcErrors += 1
            }
            Self.raise(&state, flags)
            state.unreadFrame = length > 0
            state.counters.received += 1
            if mode == Mode.rxSingle.rawValue {
                state.registers[1] = (state.registers[1] & 0xF8) | Mode.standby.rawValue
                state.rxSession += 1
            }
            return true
        }
        if heard { updateDIOs() }
    }

    /// The RSSI offset of the port a frequency uses: the LF port (bands 2 and 3, up to 525 MHz)
    /// or the HF port (band 1, 779 MHz and up). Datasheet §5.5.5.
    public static func rssiOffset(frequencyHz: UInt32) -> Double {
        frequencyHz > 525_000_000 ? -157 : -164
    }

    /// RegPktSnrValue and RegPktRssiValue for a frame of this RSSI and SNR, rounded to the
    /// registers' resolution (0.25 dB of SNR, 1 dB of RSSI) and clamped to their ranges.
    public static func encodeSignal(rssiDBm: Double, snrDB: Double, frequencyHz: UInt32) -> (snr: UInt8, rssi: UInt8) {
        let snrQuarter = clampedInteger(snrDB * 4, -128...127)
        let snr = Double(snrQuarter) / 4
        let offset = rssiOffset(frequencyHz: frequencyHz)
        let raw = snr < 0 ? rssiDBm - offset - snr : (rssiDBm - offset) * 15 / 16
        let rssi = clampedInteger(raw, 0...255)
        return (UInt8(bitPattern: Int8(snrQuarter)), UInt8(rssi))
    }

    // MARK: Pins

    private func resetLevelChanged(high: Bool) {
        state.withLock { state in
            if !high {
                state.inReset = true
                state.transmission += 1
            } else if state.inReset {
                state.inReset = false
                let counters = state.counters
                let hangSurvives = state.hung && !state.hangClearedByReset
                Self.powerOn(&state, version: version)
                state.counters = counters
                state.counters.resets += 1
                state.hung = hangSurvives
            }
        }
        air.frameReadOut()  // a reset loses what the FIFO held: who waits for it can go on
        updateDIOs()
    }

    private func updateDIOs() {
        pinLock.withLock { _ in driveDIOs() }
    }

    private func driveDIOs() {
        let (dio0, dio1, pulse) = state.withLock { state -> (Bool, Bool, Bool) in
            let pulse = state.flagsCleared
            state.flagsCleared = false
            if state.inReset || state.hung { return (false, false, pulse) }
            let flags = state.registers[Int(Register.irqFlags)]
            let mapping = state.registers[Int(Register.dioMapping1)]
            let dio0Source: UInt8 =
                switch mapping >> 6 {
                case 0: IRQ.rxDone
                case 1: IRQ.txDone
                case 2: IRQ.cadDone
                default: 0
                }
            let dio1Source: UInt8 =
                switch (mapping >> 4) & 0x03 {
                case 0: IRQ.rxTimeout
                case 1: IRQ.fhssChangeChannel
                case 2: IRQ.cadDetected
                default: 0
                }
            return (flags & dio0Source != 0, flags & dio1Source != 0, pulse)
        }
        if pulse {
            if let pin = pins.dio0 { gpio.drive(pin, high: false) }
            if let pin = pins.dio1 { gpio.drive(pin, high: false) }
        }
        if let pin = pins.dio0 { gpio.drive(pin, high: dio0) }
        if let pin = pins.dio1 { gpio.drive(pin, high: dio1) }
    }

    // MARK: Register decoding

    private static func powerOn(_ state: inout State, version: UInt8) {
        var registers = [UInt8](repeating: 0, count: 128)
        let defaults: [UInt8: UInt8] = [
            Register.opMode: 0x09,
            Register.frfMsb: 0x6C, Register.frfMid: 0x80, Register.frfLsb: 0x00,
            Register.paConfig: 0x4F, 0x0A: 0x09, 0x0B: 0x2B, 0x0C: 0x20,
            Register.fifoTxBaseAddr: 0x80, Register.fifoRxBaseAddr: 0x00,
            Register.modemConfig1: 0x72, Register.modemConfig2: 0x70, 0x1F: 0x64,
            Register.preambleLsb: 0x08, Register.payloadLength: 0x01, Register.maxPayloadLength: 0xFF,
            Register.modemConfig3: 0x04, 0x31: 0xC3, Register.invertIQ: 0x27, 0x37: 0x0A,
            Register.syncWord: 0x12, Register.invertIQ2: 0x1D, Register.version: version, 0x4B: 0x09, 0x4D: 0x84,
        ]
        for (address, value) in defaults { registers[Int(address)] = value }
        state.registers = registers
        state.fifo = [UInt8](repeating: 0, count: 256)
        state.unreadFrame = false
        state.transmission += 1
        state.rxSession += 1
    }

    static func frequency(of registers: [UInt8]) -> UInt32 {
        let frf = UInt64(registers[6]) << 16 | UInt64(registers[7]) << 8 | UInt64(registers[8])
        return UInt32((frf * 32_000_000 + (1 << 18)) >> 19)
    }

    static let bandwidths: [LoRaBandwidth] = [
        .khz7_8, .khz10_4, .khz15_6, .khz20_8, .khz31_25, .khz41_7, .khz62_5, .khz125, .khz250, .khz500,
    ]

    static func modulation(of registers: [UInt8]) -> LoRaModulation? {
        let config1 = registers[Int(Register.modemConfig1)]
        let config2 = registers[Int(Register.modemConfig2)]
        let bandwidthCode = Int(config1 >> 4)
        guard bandwidthCode < bandwidths.count,
            let spreadingFactor = SpreadingFactor(rawValue: Int(config2 >> 4)), spreadingFactor >= .sf6,
            let codingRate = CodingRate(rawValue: Int((config1 >> 1) & 0x07))
        else { return nil }
        return LoRaModulation(
            spreadingFactor: spreadingFactor, bandwidth: bandwidths[bandwidthCode], codingRate: codingRate)
    }
}

/// `value` rounded and clamped to `range`; NaN gives the lower bound. Never traps.
func clampedInteger(_ value: Double, _ range: ClosedRange<Int>) -> Int {
    guard !value.isNaN else { return range.lowerBound }
    let rounded = value.rounded()
    if rounded <= Double(range.lowerBound) { return range.lowerBound }
    if rounded >= Double(range.upperBound) { return range.upperBound }
    return Int(rounded)
}
