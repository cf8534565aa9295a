import Clocks
import HAL
import HALMock
import TestSupport
import Testing

@testable import Radio

func mockBoard(_ name: String) throws -> MockBoard {
    try MockBoard(profile: BoardCatalog.loadFile(boardDirectory + "/\(name).toml"), air: Air(timeScale: 0))
}

@Suite(.capturingLogs) struct BoardProbeTests {
    @Test func probesTheMockSX1276() async throws {
        let board = try mockBoard("mock")
        let report = try await BoardProbe.probe(board)
        #expect(report.chip == "SX1276")
        #expect(report.findings.first?.contains("RegVersion 0x12") == true)
        #expect(report.findings.contains { $0.contains("resets the radio") })
        #expect(board.sx1276!.counters.resets == 2, "the probe pulsed reset twice")
        #expect(board.virtualGPIO.holder(17) == nil, "the probe gives its lines back")
    }

    @Test func probesTheMockSX1262ThroughItsGPIOChipSelect() async throws {
        let board = try mockBoard("mock-sx1262")
        let report = try await BoardProbe.probe(board)
        #expect(report.chip == "SX1262")
        #expect(report.findings.first?.contains("STBY_RC") == true)
        #expect(report.findings.contains { $0.contains("0x1424") })
        #expect(board.virtualGPIO.history(21).count >= 4, "chip select toggled around each message")
    }

    @Test func aSilentRadioFailsWithTheChecksToMake() async throws {
        let board = try mockBoard("mock")
        board.sx1276!.hang(survivesReset: true)
        do {
            _ = try await BoardProbe.probe(board)
            Issue.record("a silent radio passed the probe")
        } catch {
            #expect(error.message.contains("nothing answered on mock:spidev0.0"))
            #expect(error.message.contains("reset line"))
        }
    }

    @Test func aStuckBusyLineFailsTheSX1262Probe() async throws {
        let board = try mockBoard("mock-sx1262")
        board.sx1262!.holdBusy()
        do {
            _ = try await BoardProbe.probe(board)
            Issue.record("a busy radio passed the probe")
        } catch {
            #expect(error.message.contains("stayed high"))
        }
    }

    @Test func aLineHeldElsewhereIsReported() async throws {
        let board = try mockBoard("mock")
        let held = try board.requestLine(.reset, .output(initial: false))
        defer { held.release() }
        do {
            _ = try await BoardProbe.probe(board)
            Issue.record("probed a board whose reset line is taken")
        } catch {
            #expect(error.message.contains("held by"))
        }
    }
}

@Suite(.capturingLogs) struct MiswiredBoardProbeTests {
    @Test func anSX1276WhoseResetIsNotWiredFailsTheProbe() async throws {
        let profile = try BoardCatalog.loadFile(boardDirectory + "/mock.toml")
        let board = try MockBoard(profile: profile, air: Air(timeScale: 0), disconnected: [.reset])
        do {
            _ = try await BoardProbe.probe(board)
            Issue.record("a board with a broken reset line passed the probe")
        } catch {
            #expect(error.message.contains("did not reset the radio"))
        }
    }

    @Test func anSX1262WhoseResetIsNotWiredFailsTheProbe() async throws {
        let profile = try BoardCatalog.loadFile(boardDirectory + "/mock-sx1262.toml")
        let board = try MockBoard(profile: profile, air: Air(timeScale: 0), disconnected: [.reset])
        do {
            _ = try await BoardProbe.probe(board)
            Issue.record("a board with a broken reset line passed the probe")
        } catch {
            #expect(error.message.contains("did not reset the radio"))
        }
    }
}
