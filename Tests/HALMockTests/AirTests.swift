import Clocks
import HAL
import LoRaPHY
import TestSupport
import Testing

@testable import HALMock

@Suite(.capturingLogs) struct AirTests {
    @Test func aRadioHearsOnlyItsChannelDataRateSyncWordAndPolarity() throws {
        let air = Air(timeScale: 0)
        let board = try MockBoard(profile: mockSX1276Profile, air: air)
        let bus = SX1276Bus(spi: try board.openSPI())
        try bus.configure(frequencyHz: 868_100_000, spreadingFactor: 7)
        try bus.write(0x01, 0x85)

        air.send(uplink([1], frequencyHz: 868_300_000))
        air.send(uplink([2], sf: .sf8))
        var inverted = uplink([3])
        inverted.invertedIQ = true
        air.send(inverted)
        var privateNetwork = uplink([4])
        privateNetwork.syncWord = .private
        air.send(privateNetwork)
        var wide = uplink([5])
        wide.modulation.bandwidth = .khz250
        air.send(wide)
        #expect(board.sx1276!.counters.received == 0)

        air.send(uplink([6], frequencyHz: 868_100_000))
        #expect(board.sx1276!.counters.received == 1)
        #expect(air.counts == (sent: 6, heard: 1))
    }

    @Test func aRadioInStandbyOrSleepHearsNothing() throws {
        let air = Air(timeScale: 0)
        let board = try MockBoard(profile: mockSX1276Profile, air: air)
        let bus = SX1276Bus(spi: try board.openSPI())
        try bus.configure(frequencyHz: 868_100_000)
        air.send(uplink([1]))
        try bus.write(0x01, 0x80)
        air.send(uplink([2]))
        #expect(board.sx1276!.counters.received == 0)
    }

    @Test func aTransmittingRadioHearsNothing() async throws {
        // Real time: 40 bytes at SF12/125 kHz keep the radio on air for 1.97 s; a one-byte SF12
        // frame from a sensor lasts 0.83 s and so ends while the radio is still transmitting.
        let air = Air(timeScale: 1)
        let board = try MockBoard(profile: mockSX1276Profile, air: air)
        let bus = SX1276Bus(spi: try board.openSPI())
        try bus.configure(frequencyHz: 868_100_000, spreadingFactor: 7)
        try bus.write(0x1E, 0xC4)  // SF12
        try bus.write(0x0D, 0x00)
        try bus.spi.write([0x80] + [UInt8](repeating: 0x5A, count: 40))
        try bus.write(0x22, 40)
        let started = ContinuousClock.now
        try bus.write(0x01, 0x83)
        #expect(board.sx1276!.mode == .tx)
        air.send(uplink([9], sf: .sf12))
        // Polled rather than slept on: a loaded machine may wake late, never early.
        let sx1276 = board.sx1276!
        #expect(await eventually(within: 10) { sx1276.mode == .standby }, "TxDone after the airtime")
        #expect(ContinuousClock.now - started >= .milliseconds(1900), "not before it")
        #expect(sx1276.counters.received == 0)
        // The same frame is heard once the radio listens.
        try bus.write(0x01, 0x85)
        air.send(uplink([9], sf: .sf12))
        #expect(await eventually(within: 10) { sx1276.counters.received == 1 })
    }

    @Test func aFrameThatBeganWhileTheRadioTransmittedIsNotHeard() async throws {
        // The radio sends a short SF12 frame (0.83 s), is back in RX long before a 40-byte
        // SF12 frame (1.97 s) that started with it ends: it missed that frame's start.
        let air = Air(timeScale: 1)
        let board = try MockBoard(profile: mockSX1276Profile, air: air)
        let bus = SX1276Bus(spi: try board.openSPI())
        try bus.configure(frequencyHz: 868_100_000, spreadingFactor: 12)
        try bus.write(0x01, 0x85)
        try bus.write(0x01, 0x81)
        try bus.write(0x0D, 0x00)
        try bus.write(0x00, 0xE0)
        try bus.write(0x22, 0x01)
        try bus.write(0x01, 0x83)
        air.send(uplink([UInt8](repeating: 7, count: 40), sf: .sf12))
        try await Task.sleep(for: .milliseconds(1300))
        #expect(board.sx1276!.mode == .standby)
        try bus.write(0x01, 0x85)
        try await Task.sleep(for: .milliseconds(1200))
        #expect(board.sx1276!.counters.received == 0)
    }

    @Test func oneBoardHearsAnotherBoardsTransmission() throws {
        let air = Air(timeScale: 0, radioLinkRSSI: -88, radioLinkSNR: 6)
        let sender = try MockBoard(profile: mockSX1276Profile, air: air)
        let listener = try MockBoard(profile: mockSX1262Profile, air: air)
        let tx = SX1276Bus(spi: try sender.openSPI())
        let rx = SX1262Bus(spi: try listener.openSPI(), busy: try listener.requestLine(.busy, .input(edges: .none)))
        try rx.configure(frequencyHz: 868_100_000)
        try rx.command(0x82, [0xFF, 0xFF, 0xFF])
        try tx.configure(frequencyHz: 868_100_000)
        try tx.write(0x0D, 0x00)
        try tx.write(0x00, 0xAB, 0xCD)
        try tx.write(0x22, 0x02)
        try tx.write(0x01, 0x83)
        #expect(listener.sx1262!.counters.received == 1)
        let packet = try rx.command(0x14, reading: 4)
        #expect(-Double(packet[2]) / 2 == -88)
        #expect(air.transmissions.map(\.payload) == [[0xAB, 0xCD]])
        #expect(sender.sx1276!.counters.received == 0, "a radio does not hear itself")
    }

    @Test func transmissionsCanBeAwaited() async throws {
        let air = Air(timeScale: 0)
        let board = try MockBoard(profile: mockSX1276Profile, air: air)
        let bus = SX1276Bus(spi: try board.openSPI())
        let stream = air.transmissionStream()
        try bus.configure(frequencyHz: 868_100_000)
        try bus.write(0x0D, 0x00)
        try bus.write(0x00, 0x01)
        try bus.write(0x22, 0x01)
        try bus.write(0x01, 0x83)
        let first = try await withTimeout { await stream.first { _ in true } }
        #expect(first?.payload == [0x01])
    }

    @Test func concentratorProfilesAreRefused() throws {
        let profile = try BoardProfile.parse(
            """
            name = "c"
            radio = "sx1302"
            [gpio]
            reset = { offset = 17 }
            """, file: "c.toml")
        #expect(throws: HardwareError.self) { try MockBoard(profile: profile, air: Air(timeScale: 0)) }
    }
}
