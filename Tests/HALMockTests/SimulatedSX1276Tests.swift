import Clocks
import HAL
import LoRaPHY
import TestSupport
import Testing

@testable import HALMock

@Suite(.capturingLogs) struct SimulatedSX1276Tests {
    let air = Air(timeScale: 0)
    let board: MockBoard
    let bus: SX1276Bus

    init() throws {
        board = try MockBoard(profile: mockSX1276Profile, air: air)
        bus = SX1276Bus(spi: try board.openSPI())
    }

    @Test func readsVersionAndPowerOnValues() throws {
        #expect(try bus.read(0x42) == 0x12)
        #expect(try bus.read(0x01) == 0x09, "FSK, low-frequency mode, standby")
        #expect(try bus.read(0x06, count: 3) == [0x6C, 0x80, 0x00], "434 MHz")
        #expect(try bus.read(0x39) == 0x12)
    }

    /// 868.1 MHz: Frf = 868.1e6 · 2^19 / 32e6 = 0xD90666 (rounded down; 868.099975 MHz).
    @Test func setsFrequencyAndReadsItBack() throws {
        try bus.write(0x01, 0x80)
        try bus.write(0x06, 0xD9, 0x06, 0x66)
        #expect(try bus.read(0x06, count: 3) == [0xD9, 0x06, 0x66])
        #expect(board.sx1276!.frequencyHz == 868_099_976)
    }

    @Test func burstWritesAutoIncrementTheAddress() throws {
        try bus.write(0x20, 0x00, 0x0C)
        #expect(try bus.read(0x21) == 0x0C)
    }

    @Test func fifoReadsAndWritesAtTheFifoPointer() throws {
        try bus.write(0x01, 0x80)
        try bus.write(0x01, 0x81)
        try bus.write(0x0D, 0x80)
        try bus.write(0x00, 0xDE, 0xAD, 0xBE, 0xEF)
        #expect(try bus.read(0x0D) == 0x84, "pointer advanced by four")
        try bus.write(0x0D, 0x80)
        #expect(
            try bus.read(0x00, count: 4) == [0xDE, 0xAD, 0xBE, 0xEF], "RegFifo does not auto-increment the address")
        #expect(try bus.read(0x0D) == 0x84)
    }

    @Test func sleepClearsTheFifoAndLongRangeChangesOnlyInSleep() throws {
        try bus.write(0x01, 0x81)  // standby, FSK: LongRange cannot be set outside sleep
        #expect(try bus.read(0x01) & 0x80 == 0)
        try bus.write(0x01, 0x80)
        #expect(try bus.read(0x01) == 0x80)
        try bus.write(0x01, 0x81)
        try bus.write(0x0D, 0x00)
        try bus.write(0x00, 0x55)
        try bus.write(0x01, 0x80)
        try bus.write(0x01, 0x81)
        try bus.write(0x0D, 0x00)
        #expect(try bus.read(0x00) == 0x00)
    }

    @Test func receivesAFrameRaisesRxDoneOnDIO0AndClearsIt() async throws {
        let dio0 = try board.requestLine(.dio0, .input(edges: .rising))
        let edges = try dio0.edgeEvents()
        try bus.configure(frequencyHz: 868_100_000)
        try bus.write(0x40, 0x00)  // DIO0 = RxDone
        try bus.write(0x01, 0x85)  // RXCONTINUOUS
        air.send(uplink([0x40, 0x01, 0x02, 0x03], rssi: -97, snr: -3.25))

        let edge = try await withTimeout { await edges.first { _ in true } }
        #expect(edge?.edge == .rising)
        #expect(try bus.read(0x12) == 0x50, "RxDone | ValidHeader")
        let count = Int(try bus.read(0x13))
        let start = try bus.read(0x10)
        try bus.write(0x0D, start)
        #expect(try bus.read(0x00, count: count) == [0x40, 0x01, 0x02, 0x03])
        #expect(Int8(bitPattern: try bus.read(0x19)) == -13, "SNR −3.25 dB in quarters")
        // Datasheet §5.5.5, SNR < 0: RSSI = −157 + PacketRssi + SNR.
        let packetRssi = Double(try bus.read(0x1A))
        #expect(abs(-157 + packetRssi + -3.25 - -97) <= 0.5)

        try bus.write(0x12, 0xFF)
        #expect(try bus.read(0x12) == 0x00)
        #expect(!board.virtualGPIO.level(4), "DIO0 falls when RxDone is cleared")
        #expect(board.sx1276!.counters.received == 1)
    }

    @Test func positiveSNRUsesTheSixteenFifteenthsSlope() {
        let (snr, rssi) = SimulatedSX1276.encodeSignal(rssiDBm: -60, snrDB: 9.5, frequencyHz: 868_100_000)
        #expect(Int8(bitPattern: snr) == 38)
        #expect(abs(-157 + Double(rssi) * 16 / 15 - -60) <= 1.1)
        let (_, lowBand) = SimulatedSX1276.encodeSignal(rssiDBm: -100, snrDB: -5, frequencyHz: 433_175_000)
        #expect(-164 + Double(lowBand) - 5 == -100, "LF port below 525 MHz")
    }

    @Test func crcErrorsAreFlaggedAndMaskedIRQsAreNotRaised() throws {
        try bus.configure(frequencyHz: 868_100_000)
        try bus.write(0x01, 0x85)
        var bad = uplink([1, 2, 3])
        bad.crcValid = false
        air.send(bad)
        #expect(try bus.read(0x12) == 0x70, "RxDone | PayloadCrcError | ValidHeader")
        try bus.write(0x12, 0xFF)
        try bus.write(0x11, 0x40)  // mask RxDone
        air.send(uplink([1, 2, 3]))
        #expect(try bus.read(0x12) == 0x10)
        #expect(board.sx1276!.counters.crcErrors == 1)
    }

    @Test func transmitsTheFifoAndRaisesTxDone() throws {
        try bus.configure(frequencyHz: 869_525_000, spreadingFactor: 9)
        try bus.write(0x40, 0x40)  // DIO0 = TxDone
        try bus.write(0x0D, 0x00)
        try bus.write(0x00, 0xE0, 0x01, 0x02)
        try bus.write(0x22, 0x03)
        try bus.write(0x01, 0x83)  // TX
        let sent = air.transmissions
        #expect(sent.count == 1)
        #expect(sent.first?.payload == [0xE0, 0x01, 0x02])
        #expect(sent.first?.modulation.spreadingFactor == .sf9)
        #expect(abs(Int(sent.first!.frequencyHz) - 869_525_000) < 62)
        #expect(sent.first?.invertedIQ == false)
        #expect(try bus.read(0x12) & 0x08 == 0x08)
        #expect(try bus.read(0x01) == 0x81, "back to standby")
        #expect(board.virtualGPIO.level(4))
    }

    @Test func resetRestoresPowerOnValuesAndIgnoresSPIWhileHeld() throws {
        try bus.write(0x01, 0x80)
        try bus.write(0x39, 0x34)
        let reset = try board.requestLine(.reset, .output(initial: false))
        try reset.setValue(true)
        #expect(try bus.read(0x42) == 0x00, "no answer while in reset")
        try reset.setValue(false)
        #expect(try bus.read(0x39) == 0x12)
        #expect(try bus.read(0x01) == 0x09)
        #expect(board.sx1276!.counters.resets == 1)
    }

    @Test func aHungChipAnswersNothingUntilReset() throws {
        board.sx1276!.hang()
        #expect(try bus.read(0x42) == 0x00)
        let reset = try board.requestLine(.reset, .output(initial: false))
        try reset.setValue(true)
        try reset.setValue(false)
        #expect(try bus.read(0x42) == 0x12)
    }

    @Test func aGlitchLosesTheConfiguration() throws {
        try bus.configure(frequencyHz: 868_100_000)
        board.sx1276!.glitch()
        #expect(try bus.read(0x39) == 0x12)
        #expect(try bus.read(0x01) == 0x09)
    }
}
