import Clocks
import HAL
import LoRaPHY
import TestSupport
import Testing

@testable import HALMock

@Suite(.capturingLogs) struct SimulatedSX1262Tests {
    let air = Air(timeScale: 0)
    let board: MockBoard
    let bus: SX1262Bus

    init() throws {
        board = try MockBoard(profile: mockSX1262Profile, air: air)
        bus = SX1262Bus(spi: try board.openSPI(), busy: try board.requestLine(.busy, .input(edges: .none)))
    }

    @Test func getStatusReportsStandbyAfterReset() throws {
        let reset = try board.requestLine(.reset, .output(initial: false))
        try reset.setValue(true)
        #expect(board.virtualGPIO.level(20), "BUSY is high in reset")
        try reset.setValue(false)
        try bus.waitReady()
        let status = try bus.command(0xC0, reading: 1)[1]
        #expect((status >> 4) & 0x07 == 0x2, "STBY_RC")
        #expect(board.sx1262!.counters.resets == 1)
    }

    /// 868.1 MHz: RfFreq = 868.1e6 · 2^25 / 32e6 = 0x36419999.
    @Test func setsTheFrequency() throws {
        try bus.command(0x86, [0x36, 0x41, 0x99, 0x99])
        #expect(board.sx1262!.frequencyHz == 868_099_999)
    }

    @Test func writesAndReadsTheBuffer() throws {
        try bus.command(0x0E, [0x10, 0xCA, 0xFE, 0x00, 0x01])
        let reply = try bus.command(0x1E, [0x10, 0x00], reading: 4)
        #expect(Array(reply[3...]) == [0xCA, 0xFE, 0x00, 0x01])
    }

    @Test func syncWordRegisterReadsItsPowerOnValueAndTakesWrites() throws {
        #expect(Array(try bus.command(0x1D, [0x07, 0x40, 0x00], reading: 2)[4...]) == [0x14, 0x24])
        try bus.command(0x0D, [0x07, 0x40, 0x34, 0x44])
        #expect(Array(try bus.command(0x1D, [0x07, 0x40, 0x00], reading: 2)[4...]) == [0x34, 0x44])
    }

    @Test func receivesAFrameRaisesRxDoneOnDIO1AndClearsIt() async throws {
        let dio1 = try board.requestLine(.dio1, .input(edges: .rising))
        let edges = try dio1.edgeEvents()
        try bus.configure(frequencyHz: 868_100_000)
        try bus.command(0x82, [0xFF, 0xFF, 0xFF])  // continuous RX
        air.send(uplink([0x40, 0xAA, 0xBB], rssi: -101.5, snr: -4.75))
        let edge = try await withTimeout { await edges.first { _ in true } }
        #expect(edge?.edge == .rising)

        let irq = try bus.command(0x12, reading: 3)
        #expect(UInt16(irq[2]) << 8 | UInt16(irq[3]) == 0x0002, "only RxDone: the others are not in the IRQ mask")
        let buffer = try bus.command(0x13, reading: 3)
        #expect(buffer[2] == 3)
        let payload = try bus.command(0x1E, [buffer[3], 0x00], reading: Int(buffer[2]))
        #expect(Array(payload[3...]) == [0x40, 0xAA, 0xBB])
        let packet = try bus.command(0x14, reading: 4)
        #expect(-Double(packet[2]) / 2 == -101.5, "RssiPkt = −s0/2")
        #expect(Double(Int8(bitPattern: packet[3])) / 4 == -4.75, "SnrPkt = s1/4")
        #expect(board.virtualGPIO.level(16))

        try bus.command(0x02, [0xFF, 0xFF])
        #expect(!board.virtualGPIO.level(16), "DIO1 falls when the IRQ is cleared")
        #expect(board.sx1262!.chipMode == .rx, "continuous RX stays in RX")
    }

    @Test func singleReceptionReturnsToStandby() throws {
        try bus.configure(frequencyHz: 868_100_000)
        try bus.command(0x82, [0x00, 0x00, 0x00])
        air.send(uplink([1]))
        #expect(board.sx1262!.chipMode == .standbyRC)
    }

    @Test func rxTimeoutRaisesTimeout() throws {
        try bus.configure(frequencyHz: 868_100_000)
        try bus.command(0x82, [0x00, 0x10, 0x00])
        let irq = try bus.command(0x12, reading: 3)
        #expect(UInt16(irq[2]) << 8 | UInt16(irq[3]) == 0x0200)
    }

    @Test func transmitsTheBufferAndRaisesTxDone() throws {
        try bus.configure(frequencyHz: 869_525_000)
        try bus.command(0x8C, [0x00, 0x08, 0x00, 0x02, 0x01, 0x01])  // 2 bytes, CRC, inverted IQ
        try bus.command(0x0E, [0x00, 0x60, 0x01])
        try bus.command(0x83, [0x00, 0x00, 0x00])
        let frame = try #require(air.transmissions.first)
        #expect(frame.payload == [0x60, 0x01])
        #expect(frame.invertedIQ)
        #expect(frame.syncWord == .public)
        let irq = try bus.command(0x12, reading: 3)
        #expect(irq[3] & 0x01 == 0x01, "TxDone")
        #expect(board.sx1262!.chipMode == .standbyRC)
    }

    @Test func commandsSentWhileBusyAreLost() throws {
        board.sx1262!.holdBusy()
        #expect(try bus.busy.value())
        _ = try bus.spi.exchange([0x86, 0x36, 0x41, 0x99, 0x99])
        #expect(board.sx1262!.counters.commandsWhileBusy == 1)
        #expect(board.sx1262!.frequencyHz == 0)
        board.sx1262!.releaseBusy()
        try bus.command(0x86, [0x36, 0x41, 0x99, 0x99])
        #expect(board.sx1262!.frequencyHz == 868_099_999)
    }

    @Test func sleepIsLeftByAChipSelect() throws {
        try bus.command(0x84, [0x04])
        #expect(board.sx1262!.chipMode == .sleep)
        #expect(try bus.busy.value(), "BUSY stays high while asleep")
        _ = try bus.spi.exchange([0xC0, 0x00])
        try bus.waitReady()
        #expect(board.sx1262!.chipMode == .standbyRC)
    }

    @Test func unknownOpcodeSetsProcessingError() throws {
        try bus.command(0x55, [0x01])
        let status = try bus.command(0xC0, reading: 1)[1]
        #expect((status >> 1) & 0x07 == 0x4)
        #expect(board.sx1262!.counters.unknownCommands == 1)
    }

    @Test func withoutChipSelectTheChipHearsNothing() throws {
        // The raw bus device, without the GPIO chip select wrapper: NSS stays high.
        let raw = MockSPIDevice(
            path: "mock", configuration: SPIConfiguration(speedHz: 1_000_000), peripheral: board.sx1262!,
            chipSelectLine: (board.virtualGPIO, 21))
        #expect(try raw.exchange([0xC0, 0x00]) == [0x00, 0x00])
        #expect(try bus.command(0xC0, reading: 1)[1] != 0x00)
    }
}

@Suite(.capturingLogs) struct SimulatedSX1262TimingTests {
    @Test func aCommandSentWhileBusyIsLost() throws {
        // Stretched time: the 20 µs busy period lasts 100 ms, so a loaded machine cannot
        // let it end before the next exchange.
        let air = Air(timeScale: 5_000)
        let board = try MockBoard(profile: mockSX1262Profile, air: air)
        let bus = SX1262Bus(spi: try board.openSPI(), busy: try board.requestLine(.busy, .input(edges: .none)))
        try bus.waitReady()
        _ = try bus.spi.exchange([0x8A, 0x01])
        // Sent without waiting: lost, as on the chip.
        _ = try bus.spi.exchange([0x86, 0x36, 0x41, 0x99, 0x99])
        #expect(board.sx1262!.counters.commandsWhileBusy >= 1)
        #expect(board.virtualGPIO.history(20).contains { $0.high })
        try bus.command(0x86, [0x36, 0x41, 0x99, 0x99])
        try bus.waitReady()
        #expect(board.sx1262!.frequencyHz == 868_099_999)
    }

    @Test func coldSleepLosesTheConfigurationAndWarmSleepKeepsIt() throws {
        let board = try MockBoard(profile: mockSX1262Profile, air: Air(timeScale: 0))
        let bus = SX1262Bus(spi: try board.openSPI(), busy: try board.requestLine(.busy, .input(edges: .none)))
        try bus.command(0x86, [0x36, 0x41, 0x99, 0x99])
        try bus.command(0x84, [0x04])  // warm start
        _ = try bus.spi.exchange([0xC0, 0x00])
        #expect(board.sx1262!.frequencyHz == 868_099_999)
        try bus.command(0x84, [0x00])  // cold start
        _ = try bus.spi.exchange([0xC0, 0x00])
        #expect(board.sx1262!.frequencyHz == 0)
    }

    @Test func cadRaisesCadDone() throws {
        let board = try MockBoard(profile: mockSX1262Profile, air: Air(timeScale: 0))
        let bus = SX1262Bus(spi: try board.openSPI(), busy: try board.requestLine(.busy, .input(edges: .none)))
        try bus.command(0x8A, [0x01])
        try bus.command(0x08, [0x00, 0x80, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00])
        try bus.command(0xC5)
        let irq = try bus.command(0x12, reading: 3)
        #expect(irq[3] == 0x80)
        #expect(board.virtualGPIO.level(16))
    }
}
