import Clocks
import HAL
import LoRaPHY

/// The SX1276/77/78/79 (and HopeRF RFM95/96) in LoRa mode, register by register (SX1276
/// datasheet rev. 7): RxDone and TxDone on DIO0, the FIFO, packet RSSI and SNR.
final class SX127xChip: RadioChip {
    let name = "sx127x"
    private let board: any BoardHardware
    private var spi: (any SPIDevice)?
    private(set) var resetLine: (any GPIOLine)?
    private(set) var interruptLine: (any GPIOLine)?

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
        static let rssiValue: UInt8 = 0x1B
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
        case sleep = 0x80
        case standby = 0x81
        case tx = 0x83
        case rxContinuous = 0x85
    }

    enum IRQ {
        static let rxDone: UInt8 = 0x40
        static let payloadCrcError: UInt8 = 0x20
        static let txDone: UInt8 = 0x08
    }

    /// The bandwidth codes of RegModemConfig1 bits 7–4, in order.
    static let bandwidthCodes: [LoRaBandwidth] = [
        .khz7_8, .khz10_4, .khz15_6, .khz20_8, .khz31_25, .khz41_7, .khz62_5, .khz125, .khz250, .khz500,
    ]

    init(board: any BoardHardware) {
        self.board = board
    }

    func open() throws(HardwareError) {
        spi = try board.openSPI()
        resetLine = try board.requestLine(.reset, .output(initial: false))
        interruptLine = try board.requestLineIfPresent(.dio0, .input(edges: .rising))
    }

    func close() {
        interruptLine?.release()
        resetLine?.release()
        interruptLine = nil
        resetLine = nil
        spi = nil
    }

    func setUp(_ configuration: RadioConfiguration) throws(RadioError) {
        do {
            let version = try read(Register.version)
            guard version == 0x12 else {
                throw RadioError(
                    version == 0x00 || version == 0xFF
                        ? "the SX127x on \(spi?.path ?? "SPI") does not answer (RegVersion 0x\(hex(version)))"
                        : "RegVersion is 0x\(hex(version)), not an SX1276-family radio (0x12)")
            }
            try configureReceiver(configuration)
        } catch let error as RadioError {
            throw error
        } catch let error as HardwareError {
            throw RadioError(error.message)
        } catch {
            throw RadioError("\(error)")
        }
    }

    /// LoRa mode, the configured channel and data rate, continuous reception.
    func configureReceiver(_ configuration: RadioConfiguration) throws(HardwareError) {
        // LongRangeMode changes only in sleep.
        try write(Register.opMode, Mode.sleep.rawValue)
        try write(Register.opMode, Mode.sleep.rawValue)
        try write(Register.opMode, Mode.standby.rawValue)
        try setModulation(
            frequencyHz: configuration.frequencyHz, dataRate: configuration.dataRate,
            codingRate: configuration.codingRate, preamble: configuration.preambleLength, crc: true)
        try write(Register.syncWord, configuration.syncWord.rawValue)
        try setInvertedIQ(receive: configuration.invertedIQ, transmit: false)
        try write(Register.lna, 0x23)  // maximum gain, LNA boost on the HF port
        try write(Register.maxPayloadLength, 0xFF)
        try write(Register.fifoRxBaseAddr, 0x00)
        try write(Register.fifoTxBaseAddr, 0x00)
        try write(Register.irqFlagsMask, 0x00)
        try write(Register.irqFlags, 0xFF)
        try write(Register.dioMapping1, 0x00)  // DIO0 = RxDone
        try setMode(.rxContinuous)
    }

    private func setModulation(
        frequencyHz: UInt32, dataRate: LoRaDataRate, codingRate: CodingRate, preamble: Int, crc: Bool
    ) throws(HardwareError) {
        let frf = (UInt64(frequencyHz) << 19) / 32_000_000
        try write(
            Register.frfMsb, UInt8(truncatingIfNeeded: frf >> 16), UInt8(truncatingIfNeeded: frf >> 8),
            UInt8(truncatingIfNeeded: frf))
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

    func serviceInterrupts(_ configuration: RadioConfiguration, timestamp: UInt32) throws(HardwareError) -> [ChipEvent]
    {
        let flags = try read(Register.irqFlags)
        guard flags != 0 else { return [] }
        try write(Register.irqFlags, flags)
        var events: [ChipEvent] = []
        if flags & IRQ.rxDone != 0 {
            events.append(.received(try receiveFrame(configuration, flags: flags, timestamp: timestamp)))
        }
        if flags & IRQ.txDone != 0 {
            events.append(.transmitted)
        }
        return events
    }

    private func receiveFrame(_ configuration: RadioConfiguration, flags: UInt8, timestamp: UInt32)
        throws(HardwareError) -> RadioFrame
    {
        // One burst from RegFifoRxCurrentAddr (0x10) to RegHopChannel (0x1C) holds where the
        // frame starts, its size, SNR, RSSI and whether it carried a CRC: one SPI transfer
        // rather than five.
        let first = Register.fifoRxCurrentAddr
        let block = try spi!.write([first], thenRead: Int(Register.hopChannel - first) + 1)
        func register(_ address: UInt8) -> UInt8 { block[Int(address - first)] }
        let count = Int(register(Register.rxNbBytes))
        try write(Register.fifoAddrPtr, register(Register.fifoRxCurrentAddr))
        let payload = count > 0 ? try spi!.write([Register.fifo], thenRead: count) : []
        let snr = Double(Int8(bitPattern: register(Register.pktSnrValue))) / 4
        let packetRssi = Double(register(Register.pktRssiValue))
        let hasCRC = register(Register.hopChannel) & 0x40 != 0
        return RadioFrame(
            payload: payload,
            frequencyHz: configuration.frequencyHz,
            dataRate: configuration.dataRate,
            codingRate: configuration.codingRate,
            rssiDBm: Self.packetRSSI(packetRssi: packetRssi, snr: snr, frequencyHz: configuration.frequencyHz),
            snrDB: snr,
            crc: !hasCRC ? .absent : flags & IRQ.payloadCrcError != 0 ? .bad : .ok,
            timestamp: timestamp,
            receivedAt: wallClockNanoseconds()
        )
    }

    /// Packet RSSI by the SX1276 datasheet §5.5.5: −157 + PacketRssi (HF port, band 1) or −164
    /// (LF port, bands 2 and 3, up to 525 MHz); plus SNR when SNR < 0, otherwise the 16/15
    /// correction. LoRaMac-node picks the port at 525 MHz too; arduino-LoRa's 868 MHz threshold
    /// would put 863–868 MHz on the wrong port.
    static func packetRSSI(packetRssi: Double, snr: Double, frequencyHz: UInt32) -> Double {
        let offset: Double = frequencyHz > 525_000_000 ? -157 : -164
        return snr < 0 ? offset + packetRssi + snr : offset + packetRssi * 16 / 15
    }

    // MARK: Transmission

    func prepareTransmission(_ request: TransmitRequest) throws(HardwareError) {
        try setMode(.standby)
        try setModulation(
            frequencyHz: request.frequencyHz, dataRate: request.dataRate, codingRate: request.codingRate,
            preamble: request.preambleLength, crc: request.crc)
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

    func keyUp() throws(HardwareError) {
        try setMode(.tx)
    }

    private var sensedFrequency: UInt32 = 0

    func startSensing(frequencyHz: UInt32, dataRate: LoRaDataRate) throws(HardwareError) {
        try setMode(.standby)
        try setModulation(frequencyHz: frequencyHz, dataRate: dataRate, codingRate: .cr4_5, preamble: 8, crc: true)
        try setMode(.rxContinuous)
        sensedFrequency = frequencyHz
    }

    /// RegRssiValue: RSSI = −157 + RssiValue on the HF port, −164 on the LF port (datasheet §5.5.5).
    func instantaneousRSSI() throws(HardwareError) -> Double {
        let value = Double(try read(Register.rssiValue))
        return (sensedFrequency < 525_000_000 ? -164 : -157) + value
    }

    func power(for dBm: Int) -> Int {
        board.profile.frontEnd.paBoost ? min(max(dBm, 2), 20) : min(max(dBm, 0), 14)
    }

    /// PA_BOOST: 2 to 17 dBm, and 20 dBm with the high-power DAC. RFO: with MaxPower 7 the
    /// ceiling is 15 dBm and the output equals OutputPower, 0 to 14 dBm (datasheet §5.4.3).
    private func setPower(_ dBm: Int) throws(HardwareError) {
        let power = power(for: dBm)
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

    // MARK: Health

    func healthProblem(_ configuration: RadioConfiguration) -> String? {
        do {
            let version = try read(Register.version)
            let mode = try read(Register.opMode)
            let syncWord = try read(Register.syncWord)
            if version != 0x12 { return "RegVersion reads 0x\(hex(version))" }
            if mode != Mode.rxContinuous.rawValue || syncWord != configuration.syncWord.rawValue {
                return "configuration lost (RegOpMode 0x\(hex(mode)), RegSyncWord 0x\(hex(syncWord)))"
            }
            return nil
        } catch {
            return error.message
        }
    }

    func sleep() {
        try? setMode(.sleep)
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
