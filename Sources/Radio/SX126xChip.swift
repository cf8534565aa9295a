import Clocks
import HAL
import LoRaPHY

/// The SX1261/SX1262 in LoRa mode, command by command (SX1261/2 datasheet rev. 2.1), with the
/// BUSY handshake: the chip may only be spoken to while BUSY is low, so every command waits
/// for it first (up to 100 ms; past that the chip is deemed not answering). RxDone and TxDone
/// arrive on DIO1.
final class SX126xChip: RadioChip {
    let name = "sx126x"
    private let board: any BoardHardware
    private var spi: (any SPIDevice)?
    private var busy: (any GPIOLine)?
    private(set) var resetLine: (any GPIOLine)?
    private(set) var interruptLine: (any GPIOLine)?

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
        static let getRssiInst: UInt8 = 0x15
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

    /// The LoRa sync word's register; the register whose bit 2 must be cleared for inverted IQ
    /// and set otherwise (§15.4); and the one whose bit 2 must be cleared for 500 kHz
    /// transmissions and set otherwise (§15.1).
    static let syncWordRegister: UInt16 = 0x0740
    static let iqPolarityRegister: UInt16 = 0x0736
    static let txModulationRegister: UInt16 = 0x0889

    init(board: any BoardHardware) {
        self.board = board
    }

    func open() throws(HardwareError) {
        resetLine = try board.requestLine(.reset, .output(initial: false))
        busy = try board.requestLine(.busy, .input(edges: .none))
        interruptLine = try board.requestLineIfPresent(.dio1, .input(edges: .rising))
        spi = try board.openSPI()
    }

    func close() {
        interruptLine?.release()
        busy?.release()
        resetLine?.release()
        interruptLine = nil
        busy = nil
        resetLine = nil
        spi = nil
    }

    func setUp(_ configuration: RadioConfiguration) throws(RadioError) {
        do {
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
            try configureReceiver(configuration)
        } catch let error as RadioError {
            throw error
        } catch let error as HardwareError {
            throw RadioError(error.message)
        } catch {
            throw RadioError("\(error)")
        }
    }

    func configureReceiver(_ configuration: RadioConfiguration) throws(HardwareError) {
        try command(Opcode.setStandby, [0x00])
        try setModulation(
            frequencyHz: configuration.frequencyHz, dataRate: configuration.dataRate,
            codingRate: configuration.codingRate)
        try setPacketParameters(
            preamble: configuration.preambleLength, payloadLength: 0xFF, crc: true, invertedIQ: configuration.invertedIQ
        )
        let syncWord = configuration.syncWord.sx126xRegisterValue
        try writeRegister(Self.syncWordRegister, [UInt8(syncWord >> 8), UInt8(syncWord & 0xFF)])
        let mask = [UInt8(IRQ.used >> 8), UInt8(IRQ.used & 0xFF)]
        try command(Opcode.setDioIrqParams, mask + mask + [0, 0, 0, 0])
        try command(Opcode.clearIrqStatus, [0xFF, 0xFF])
        try command(Opcode.setRx, [0xFF, 0xFF, 0xFF])  // continuous
    }

    private func setModulation(frequencyHz: UInt32, dataRate: LoRaDataRate, codingRate: CodingRate)
        throws(HardwareError)
    {
        let steps = UInt32((UInt64(frequencyHz) << 25) / 32_000_000)
        try command(
            Opcode.setRfFrequency,
            [UInt8(steps >> 24), UInt8((steps >> 16) & 0xFF), UInt8((steps >> 8) & 0xFF), UInt8(steps & 0xFF)])
        let lowDataRate: UInt8 = LoRaAirtime.requiresLowDataRateOptimize(dataRate.modulation()) ? 1 : 0
        try command(
            Opcode.setModulationParams,
            [
                UInt8(dataRate.spreadingFactor.rawValue), Self.bandwidthCodes[dataRate.bandwidth] ?? 0x04,
                UInt8(codingRate.rawValue), lowDataRate,
            ])
    }

    private func setPacketParameters(preamble: Int, payloadLength: Int, crc: Bool, invertedIQ: Bool)
        throws(HardwareError)
    {
        try command(
            Opcode.setPacketParams,
            [
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

    func serviceInterrupts(_ configuration: RadioConfiguration, timestamp: UInt32) throws(HardwareError) -> [ChipEvent]
    {
        let reply = try command(Opcode.getIrqStatus, reading: 3)
        let flags = UInt16(reply[2]) << 8 | UInt16(reply[3])
        guard flags != 0 else { return [] }
        try command(Opcode.clearIrqStatus, [reply[2], reply[3]])
        var events: [ChipEvent] = []
        if flags & IRQ.rxDone != 0 {
            events.append(
                .received(try receiveFrame(configuration, crcError: flags & IRQ.crcError != 0, timestamp: timestamp)))
        }
        if flags & IRQ.txDone != 0 {
            events.append(.transmitted)
        }
        return events
    }

    private func receiveFrame(_ configuration: RadioConfiguration, crcError: Bool, timestamp: UInt32)
        throws(HardwareError) -> RadioFrame
    {
        let buffer = try command(Opcode.getRxBufferStatus, reading: 3)
        let length = Int(buffer[2])
        let payload = length > 0 ? Array(try command(Opcode.readBuffer, [buffer[3], 0x00], reading: length)[3...]) : []
        let status = try command(Opcode.getPacketStatus, reading: 4)
        return RadioFrame(
            payload: payload,
            frequencyHz: configuration.frequencyHz,
            dataRate: configuration.dataRate,
            codingRate: configuration.codingRate,
            rssiDBm: -Double(status[2]) / 2,
            snrDB: Double(Int8(bitPattern: status[3])) / 4,
            crc: crcError ? .bad : .ok,
            timestamp: timestamp,
            receivedAt: wallClockNanoseconds()
        )
    }

    // MARK: Transmission

    func prepareTransmission(_ request: TransmitRequest) throws(HardwareError) {
        try command(Opcode.setStandby, [0x00])
        try setModulation(frequencyHz: request.frequencyHz, dataRate: request.dataRate, codingRate: request.codingRate)
        try setPacketParameters(
            preamble: request.preambleLength, payloadLength: request.payload.count, crc: request.crc,
            invertedIQ: request.invertedIQ)
        if board.profile.radio == .sx1261 {
            try command(Opcode.setPaConfig, [0x04, 0x00, 0x01, 0x01])  // the +14 dBm row
        } else {
            try command(Opcode.setPaConfig, [0x04, 0x07, 0x00, 0x01])  // up to 22 dBm
        }
        try command(Opcode.setTxParams, [UInt8(bitPattern: Int8(power(for: request.powerDBm))), 0x04])  // 200 µs ramp
        try command(Opcode.writeBuffer, [0x00] + request.payload)
        let quality = try readRegister(Self.txModulationRegister, count: 1)[0]
        try writeRegister(
            Self.txModulationRegister, [request.dataRate.bandwidth == .khz500 ? quality & ~0x04 : quality | 0x04])
        try command(Opcode.clearIrqStatus, [0xFF, 0xFF])
    }

    func keyUp() throws(HardwareError) {
        try command(Opcode.setTx, [0x00, 0x00, 0x00])
    }

    /// −17…14 dBm on an SX1261 (the +14 dBm PA setting), −9…22 dBm on an SX1262.
    func power(for dBm: Int) -> Int {
        board.profile.radio == .sx1261 ? min(max(dBm, -17), 14) : min(max(dBm, -9), 22)
    }

    // MARK: Health

    func healthProblem(_ configuration: RadioConfiguration) -> String? {
        do {
            let status = try command(Opcode.getStatus, reading: 1)[1]
            let syncWord = try readRegister(Self.syncWordRegister, count: 2)
            let expected = configuration.syncWord.sx126xRegisterValue
            if status == 0x00 || status == 0xFF { return "GetStatus reads 0x\(hex(status))" }
            if (status >> 4) & 0x07 != 5 || syncWord != [UInt8(expected >> 8), UInt8(expected & 0xFF)] {
                return
                    """
                    configuration lost (GetStatus 0x\(hex(status)), sync word \
                    0x\(hex(syncWord[0]))\(hex(syncWord[1])))
                    """
            }
            return nil
        } catch {
            return error.message
        }
    }

    func sleep() {
        _ = try? command(Opcode.setSleep, [0x04])  // warm start keeps the configuration
    }

    // MARK: Commands

    /// Waits for BUSY to fall, then sends one command; returns the bytes clocked in.
    func startSensing(frequencyHz: UInt32, dataRate: LoRaDataRate) throws(HardwareError) {
        try command(Opcode.setStandby, [0x00])
        try setModulation(frequencyHz: frequencyHz, dataRate: dataRate, codingRate: .cr4_5)
        try command(Opcode.setRx, [0xFF, 0xFF, 0xFF])  // continuous
    }

    /// GetRssiInst: signal power = −RssiInst / 2 dBm (datasheet §13.5.7).
    func instantaneousRSSI() throws(HardwareError) -> Double {
        -Double(try command(Opcode.getRssiInst, reading: 2)[2]) / 2
    }

    @discardableResult
    private func command(_ opcode: UInt8, _ arguments: [UInt8] = [], reading count: Int = 0) throws(HardwareError)
        -> [UInt8]
    {
        guard let spi else { throw HardwareError(.invalidRequest, "the radio is not open") }
        try waitWhileBusy()
        return try spi.exchange([opcode] + arguments + [UInt8](repeating: 0, count: count))
    }

    private func readRegister(_ address: UInt16, count: Int) throws(HardwareError) -> [UInt8] {
        let reply = try command(
            Opcode.readRegister, [UInt8(address >> 8), UInt8(address & 0xFF), 0x00], reading: count)
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
