import Clocks
import HAL
import Wire

/// What answered when a board was probed.
public struct ProbeReport: Sendable, Equatable {
    /// The chip that answered, e.g. "SX1276".
    public var chip: String
    /// One line per fact learned, in the order they were learned.
    public var findings: [String]
}

/// Why a probe found nothing, or something other than the profile promised.
public struct ProbeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Resets a board's radio and asks it who it is: RegVersion on an SX127x, GetStatus and the
/// sync-word register on an SX126x, the version register of an SX1302/SX1303 concentrator.
///
/// A probe takes the radio's SPI device and lines for a moment and gives them back; it must
/// not run while hotspotd or a packet forwarder is using the board.
public enum BoardProbe {
    public static func probe(_ board: any BoardHardware) async throws(ProbeError) -> ProbeReport {
        do {
            switch board.profile.radio.family {
            case .sx127x: return try await probeSX127x(board)
            case .sx126x: return try await probeSX126x(board)
            case .concentrator: return try await probeConcentrator(board)
            }
        } catch let error as ProbeError {
            throw error
        } catch let error as HardwareError {
            throw ProbeError(error.message)
        } catch {
            throw ProbeError("\(error)")
        }
    }

    // MARK: SX127x

    static func probeSX127x(_ board: any BoardHardware) async throws -> ProbeReport {
        let profile = board.profile
        let reset = try board.requestLine(.reset, .output(initial: false))
        defer { reset.release() }
        let spi = try board.openSPI()
        var findings: [String] = []

        try await pulse(reset, profile: profile)
        let version = try spi.write([0x42], thenRead: 1)[0]
        guard version != 0x00 && version != 0xFF else {
            throw ProbeError(noAnswer(profile, what: "RegVersion (0x42) read 0x\(hex(version))"))
        }
        guard version == 0x12 else {
            let guess = version == 0x22 ? " (0x22 is an SX1272, which hotspotd does not drive)" : ""
            throw ProbeError("\(spi.path): RegVersion is 0x\(hex(version)), not an SX1276-family radio (0x12)\(guess)")
        }
        findings.append("\(spi.path): RegVersion 0x12 (SX1276/77/78/79, RFM95/96)")

        // Prove the reset line: change RegOpMode, reset, and expect the power-on value back.
        try spi.write([0x81, 0x00])
        let changed = try spi.write([0x01], thenRead: 1)[0]
        try await pulse(reset, profile: profile)
        let afterReset = try spi.write([0x01], thenRead: 1)[0]
        if changed == 0x00 && afterReset == 0x09 {
            findings.append("\(reset.name): resets the radio (RegOpMode back to its power-on 0x09)")
        } else {
            throw ProbeError(
                """
                \(reset.name) did not reset the radio (RegOpMode 0x\(hex(afterReset)) after the pulse, expected \
                0x09): check gpio.reset's offset and active_low
                """
            )
        }

        for role in [LineRole.dio0, .dio1] where profile.line(role) != nil {
            let line = try board.requestLine(role, .input(edges: .none))
            let level = try line.value()
            line.release()
            findings.append("\(line.name): reads \(level ? "active" : "inactive")")
        }
        return ProbeReport(chip: profile.radio.displayName, findings: findings)
    }

    // MARK: SX126x

    static func probeSX126x(_ board: any BoardHardware) async throws -> ProbeReport {
        let profile = board.profile
        let reset = try board.requestLine(.reset, .output(initial: false))
        defer { reset.release() }
        let busy = try board.requestLine(.busy, .input(edges: .none))
        defer { busy.release() }
        let spi = try board.openSPI()
        var findings: [String] = []

        try await pulse(reset, profile: profile)
        try await waitWhileBusy(busy, after: "reset")
        let status = try spi.exchange([0xC0, 0x00])[1]
        guard status != 0x00 && status != 0xFF else {
            throw ProbeError(noAnswer(profile, what: "GetStatus returned 0x\(hex(status))"))
        }
        let mode = (status >> 4) & 0x07
        let modes: [UInt8: String] = [2: "STBY_RC", 3: "STBY_XOSC", 4: "FS", 5: "RX", 6: "TX"]
        guard let modeName = modes[mode] else {
            throw ProbeError("\(spi.path): GetStatus returned 0x\(hex(status)), which is no SX126x chip mode")
        }
        findings.append("\(spi.path): GetStatus 0x\(hex(status)) (chip mode \(modeName))")
        try await waitWhileBusy(busy, after: "GetStatus")
        let syncWord = try readSyncWord(spi)
        findings.append("LoRa sync word register 0x0740: 0x\(hex(syncWord.0))\(hex(syncWord.1))")

        // Prove the reset line: change the sync word, reset, and expect the power-on value back.
        try await waitWhileBusy(busy, after: "ReadRegister")
        try spi.write([0x0D, 0x07, 0x40, ~syncWord.0, ~syncWord.1])
        try await waitWhileBusy(busy, after: "WriteRegister")
        let changed = try readSyncWord(spi)
        try await pulse(reset, profile: profile)
        try await waitWhileBusy(busy, after: "reset")
        let afterReset = try readSyncWord(spi)
        guard changed == (~syncWord.0, ~syncWord.1), afterReset == syncWord else {
            throw ProbeError(
                """
                \(reset.name) did not reset the radio (the sync word register kept \
                0x\(hex(afterReset.0))\(hex(afterReset.1)) through the pulse): check gpio.reset's offset and \
                active_low
                """
            )
        }
        findings.append(
            "\(reset.name): resets the radio (sync word register back to 0x\(hex(syncWord.0))\(hex(syncWord.1)))")
        findings.append("\(busy.name): falls after reset and after each command")

        if profile.line(.dio1) != nil {
            let line = try board.requestLine(.dio1, .input(edges: .none))
            let level = try line.value()
            line.release()
            findings.append("\(line.name): reads \(level ? "active" : "inactive")")
        }
        return ProbeReport(chip: profile.radio.displayName, findings: findings)
    }

    static func readSyncWord(_ spi: any SPIDevice) throws -> (UInt8, UInt8) {
        let reply = try spi.exchange([0x1D, 0x07, 0x40, 0x00, 0x00, 0x00])
        return (reply[4], reply[5])
    }

    static func waitWhileBusy(_ busy: any GPIOLine, after step: String) async throws {
        for _ in 0..<100 {
            if try !busy.value() { return }
            try await Task.sleep(for: .milliseconds(1))
        }
        throw ProbeError(
            """
            \(busy.name) stayed high for 100 ms after \(step): the radio is not running (power, reset line, or the \
            BUSY offset in the profile)
            """
        )
    }

    // MARK: Concentrators

    static func probeConcentrator(_ board: any BoardHardware) async throws -> ProbeReport {
        let profile = board.profile
        var findings: [String] = []
        // Semtech's reset_lgw.sh: power on, then pulse the SX1302's reset, then the SX1261's.
        let power = try board.requestLineIfPresent(.powerEnable, .output(initial: true))
        defer { power?.release() }
        if let power {
            try await Task.sleep(for: .milliseconds(profile.reset.powerOnMilliseconds))
            findings.append("\(power.name): on")
        }
        let reset = try board.requestLine(.reset, .output(initial: false))
        try await pulse(reset, profile: profile)
        reset.release()
        findings.append("\(reset.name): pulsed")
        if profile.line(.sx1261Reset) != nil {
            let sx1261 = try board.requestLine(.sx1261Reset, .output(initial: false))
            try await pulse(sx1261, profile: profile)
            sx1261.release()
            findings.append("\(sx1261.name): pulsed")
        }
        guard profile.spi != nil else {
            findings.append("no SPI device in the profile: the packet forwarder talks to the concentrator")
            return ProbeReport(chip: profile.radio.displayName, findings: findings)
        }
        let spi = try board.openSPI()
        // sx1302_hal's register read: mux target 0x00 (the SX1302), the 15-bit address with the
        // write bit clear, one dummy byte, then the value. COMMON_VERSION is at 0x5606.
        let reply = try spi.exchange([0x00, 0x56, 0x06, 0x00, 0x00])
        let version = reply[4]
        guard version != 0x00 && version != 0xFF else {
            throw ProbeError(noAnswer(profile, what: "the SX130x version register (0x5606) read 0x\(hex(version))"))
        }
        findings.append(
            """
            \(spi.path): chip version \
            0x\(hex(version))\(version == 0x10 ? "" : " (a healthy SX1302 reads 0x10: check the reset line)")
            """
        )
        return ProbeReport(chip: profile.radio.displayName, findings: findings)
    }

    // MARK: Helpers

    /// Holds reset active for the profile's pulse, then waits its recovery time.
    static func pulse(_ reset: any GPIOLine, profile: BoardProfile) async throws {
        try reset.setValue(true)
        try await Task.sleep(for: .milliseconds(max(profile.reset.pulseMilliseconds, 1)))
        try reset.setValue(false)
        try await Task.sleep(for: .milliseconds(profile.reset.recoveryMilliseconds))
    }

    static func noAnswer(_ profile: BoardProfile, what: String) -> String {
        let device = profile.spi?.device ?? "the SPI bus"
        return
            """
            nothing answered on \(device): \(what). Check that the board is seated and powered, that SPI is \
            enabled (`ls /dev/spidev*`), and that the profile's SPI device, chip select and reset line match the \
            board
            """
    }

    static func hex(_ byte: UInt8) -> String { Hex.encode(byte) }
}
