import TOML

/// The radio chip a board carries.
public enum RadioChip: String, Sendable, CaseIterable {
    case sx1276, sx1277, sx1278, sx1279, rfm95, rfm96
    case sx1261, sx1262
    case sx1301, sx1302, sx1303

    public enum Family: String, Sendable {
        case sx127x, sx126x, concentrator
    }

    public var family: Family {
        switch self {
        case .sx1276, .sx1277, .sx1278, .sx1279, .rfm95, .rfm96: .sx127x
        case .sx1261, .sx1262: .sx126x
        case .sx1301, .sx1302, .sx1303: .concentrator
        }
    }

    /// The fastest SPI clock the chip accepts. SX127x: 10 MHz and SX126x: 16 MHz (datasheets'
    /// digital specifications). Semtech does not state one for the SX130x; its HAL runs the bus at
    /// 2 MHz, and profiles stay at or below 8 MHz.
    public var maximumSPISpeedHz: UInt32 {
        switch family {
        case .sx127x: 10_000_000
        case .sx126x: 16_000_000
        case .concentrator: 8_000_000
        }
    }

    /// The backend that drives this chip by default.
    public var defaultBackend: BoardProfile.Backend {
        switch family {
        case .sx127x: .sx127x
        case .sx126x: .sx126x
        case .concentrator: .semtechUDP
        }
    }

    public var displayName: String { rawValue.uppercased() }
}

/// What a GPIO line of a board is for. The raw value is the key in a profile's `[gpio]` table.
public enum LineRole: String, Sendable, CaseIterable, Comparable {
    case reset
    case dio0, dio1, dio2
    case busy
    case chipSelect = "chip_select"
    case powerEnable = "power_enable"
    case sx1261Reset = "sx1261_reset"
    case txEnable = "tx_enable"
    case rxEnable = "rx_enable"
    /// The hotspot's status LED (an output), and its button (an input), on any board.
    case statusLED = "status_led"
    case button

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A board profile: which radio a board carries and how it is wired to the host.
/// Profiles are TOML files under `Board/`; `BoardProfile.parse` validates them.
public struct BoardProfile: Sendable, Equatable {
    /// How hotspotd talks to the radio.
    public enum Backend: String, Sendable, CaseIterable {
        /// An SX1276-family radio over SPI and GPIO.
        case sx127x
        /// An SX1261/62 over SPI and GPIO.
        case sx126x
        /// A concentrator driven by Semtech's packet forwarder, reached over UDP.
        case semtechUDP = "semtech_udp"
    }

    /// Which hardware backend opens the board's SPI and GPIO.
    public enum HALKind: String, Sendable, CaseIterable {
        case linux, mock
    }

    public struct SPI: Sendable, Equatable {
        public var device: String
        public var configuration: SPIConfiguration
    }

    /// Reset timing, in milliseconds.
    public struct ResetTiming: Sendable, Equatable {
        /// After the power-enable line goes active, before anything else.
        public var powerOnMilliseconds: Int
        /// How long reset is held active.
        public var pulseMilliseconds: Int
        /// After reset is released, before the chip is spoken to.
        public var recoveryMilliseconds: Int
    }

    /// Front-end facts a driver needs.
    public struct RadioFrontEnd: Sendable, Equatable {
        /// SX126x: a TCXO powered from DIO3 at this voltage; nil for a crystal.
        public var tcxoVoltage: Double?
        /// SX126x: DIO2 switches the antenna between TX and RX.
        public var dio2RFSwitch: Bool
        /// SX127x: the PA_BOOST pin is wired to the antenna (RFM95 and most HATs), not RFO.
        public var paBoost: Bool
    }

    public var name: String
    public var description: String
    public var radio: RadioChip
    public var backend: Backend
    public var hal: HALKind
    public var spi: SPI?
    public var lines: [LineRole: GPIOLineSpec]
    public var reset: ResetTiming
    public var frontEnd: RadioFrontEnd
    /// Faults the mock board plays out (`[mock]`, mock boards only).
    public var mockFaults: MockFaults = MockFaults()
    /// The secure element holding the hotspot's identity, when the board has one.
    public var secureElement: SecureElementLocation?
    /// Why hotspotd cannot run on this model, for a profile kept to say so.
    public var unsupported: String?
    /// The file the profile was read from ("" for one built in code).
    public var file: String

    /// Chip labels that stand for "the Raspberry Pi's 40-pin header", newest model first:
    /// the Pi 5's RP1 (gpiochip0 since kernel 6.6.47, gpiochip4 before), the Pi 4, the Pi 3 / Zero 2.
    public static let raspberryPiHeaderChips = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"]

    /// The lines a backend cannot do without.
    public static func requiredLines(for backend: Backend) -> [LineRole] {
        switch backend {
        case .sx127x: [.reset]
        case .sx126x: [.reset, .busy]
        case .semtechUDP: [.reset]
        }
    }

    /// The lines that make sense for a backend; any other is refused.
    public static func allowedLines(for backend: Backend) -> Set<LineRole> {
        let front: Set<LineRole> = [.statusLED, .button]
        switch backend {
        case .sx127x: return front.union([.reset, .dio0, .dio1, .dio2, .chipSelect, .txEnable, .rxEnable])
        case .sx126x: return front.union([.reset, .busy, .dio1, .chipSelect, .txEnable, .rxEnable])
        case .semtechUDP: return front.union([.reset, .powerEnable, .sx1261Reset])
        }
    }

    public func line(_ role: LineRole) -> GPIOLineSpec? {
        lines[role]
    }
}

/// Where a board's ATECC608 is: its I2C bus, its 7-bit address and the key slot.
public struct SecureElementLocation: Sendable, Equatable {
    public var bus: String
    public var address: UInt8
    public var slot: UInt16

    public init(bus: String, address: UInt8 = 0x60, slot: UInt16 = 0) {
        self.bus = bus
        self.address = address
        self.slot = slot
    }

    /// Helium's form of the same: `ecc://i2c-1:96?slot=0`.
    public var uri: String {
        let host = bus.hasPrefix("/dev/") ? String(bus.dropFirst(5)) : bus
        return "ecc://\(host):\(address)?slot=\(slot)"
    }
}

/// What the mock board does wrong on purpose, to show the daemon's supervision at work.
public struct MockFaults: Sendable, Equatable {
    /// The simulated radio stops answering this long after the board is opened, and no reset
    /// revives it: a wedged radio, which only a restart of the service clears.
    public var wedgeAfterSeconds: Double?
    /// The simulated radio stops answering this long after the board is opened, until the
    /// driver resets it: a radio that hangs mid-stream and is set up again.
    public var hangAfterSeconds: Double?

    public init(wedgeAfterSeconds: Double? = nil, hangAfterSeconds: Double? = nil) {
        self.wedgeAfterSeconds = wedgeAfterSeconds
        self.hangAfterSeconds = hangAfterSeconds
    }
}

extension BoardProfile {
    static let topLevelKeys = [
        "name", "description", "radio", "backend", "hal", "spi", "gpio", "reset", "radio_front_end", "mock",
        "secure_element", "unsupported",
    ]

    /// Parses and validates a profile. Every problem is reported with the file, the line and
    /// the key: an unknown key, a wrong type, a missing or misplaced line, one pin used twice,
    /// an SPI speed the chip cannot take.
    public static func parse(_ text: String, file: String) throws(TOMLConfigError) -> BoardProfile {
        let root = try TOMLSection.parse(text, file: file)
        let name = try root.required("name", root.string)
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw root.error("name", "'\(name)' is not a valid profile name (letters, digits, '-' and '_')")
        }
        let description = try root.string("description") ?? name

        let radioName = try root.required("radio", root.string)
        guard let radio = RadioChip(rawValue: radioName.lowercased()) else {
            throw root.error(
                "radio",
                """
                unknown radio chip '\(radioName)' (one of: \
                \(RadioChip.allCases.map(\.rawValue).joined(separator: ", ")))
                """
            )
        }

        let backend: Backend
        if let backendName = try root.string("backend") {
            guard let parsed = Backend(rawValue: backendName) else {
                throw root.error(
                    "backend",
                    """
                    unknown backend '\(backendName)' (one of: \
                    \(Backend.allCases.map(\.rawValue).joined(separator: ", ")))
                    """
                )
            }
            backend = parsed
        } else {
            backend = radio.defaultBackend
        }
        guard backend == radio.defaultBackend else {
            throw root.error(
                "backend",
                """
                backend '\(backend.rawValue)' cannot drive a \(radio.displayName) (use \
                '\(radio.defaultBackend.rawValue)')
                """
            )
        }

        let hal: HALKind
        if let halName = try root.string("hal") {
            guard let parsed = HALKind(rawValue: halName) else {
                throw root.error("hal", "unknown hardware backend '\(halName)' (one of: linux, mock)")
            }
            hal = parsed
        } else {
            hal = .linux
        }
        if hal == .mock && radio.family == .concentrator {
            throw root.error(
                "hal", "the mock board simulates SX127x and SX126x radios, not a \(radio.displayName) concentrator")
        }

        let spi = try parseSPI(root, radio: radio, backend: backend, hal: hal)
        let lines = try parseGPIO(root, backend: backend, hal: hal, spi: spi)
        let reset = try parseReset(root)
        let frontEnd = try parseFrontEnd(root, radio: radio)
        let mockFaults = try parseMockFaults(root, hal: hal)
        let secureElement = try parseSecureElement(root, hal: hal)
        let unsupported = try root.string("unsupported")
        if let unsupported, unsupported.isEmpty {
            throw root.error("unsupported", "says why the model cannot run hotspotd: it cannot be empty")
        }
        try root.rejectUnknownKeys(known: topLevelKeys)

        var profile = BoardProfile(
            name: name, description: description, radio: radio, backend: backend, hal: hal,
            spi: spi, lines: lines, reset: reset, frontEnd: frontEnd, file: file
        )
        profile.mockFaults = mockFaults
        profile.secureElement = secureElement
        profile.unsupported = unsupported
        return profile
    }

    private static func parseSecureElement(_ root: TOMLSection, hal: HALKind) throws(TOMLConfigError)
        -> SecureElementLocation?
    {
        guard let section = try root.section("secure_element") else { return nil }
        let chip = try section.string("chip") ?? "atecc608"
        guard chip == "atecc608" else {
            throw section.error("chip", "hotspotd knows the ATECC608 only, not '\(chip)'")
        }
        let bus = try section.required("bus", section.string)
        let number = bus.hasPrefix("/dev/i2c-") ? bus.dropFirst(9) : ""
        guard !number.isEmpty, number.allSatisfy(\.isASCIIDigitCharacter) else {
            throw section.error("bus", "'\(bus)' is not an i2c-dev node (expected /dev/i2c-N, such as /dev/i2c-1)")
        }
        let address = try section.integer("address", in: 0x08...0x77) ?? 0x60
        let slot = try section.integer("slot", in: 0...15) ?? 0
        try section.rejectUnknownKeys(known: ["chip", "bus", "address", "slot"])
        return SecureElementLocation(bus: bus, address: UInt8(address), slot: UInt16(slot))
    }

    private static func parseMockFaults(_ root: TOMLSection, hal: HALKind) throws(TOMLConfigError) -> MockFaults {
        guard let section = try root.section("mock") else { return MockFaults() }
        guard hal == .mock else {
            throw root.error("mock", "is only for boards with hal = \"mock\"")
        }
        var faults = MockFaults()
        for key in ["wedge_after_seconds", "hang_after_seconds"] {
            guard let seconds = try section.float(key) else { continue }
            guard seconds.isFinite, seconds >= 0, seconds <= 86_400 else {
                throw section.error(key, "must be between 0 and 86400 seconds, not \(seconds)")
            }
            if key == "wedge_after_seconds" {
                faults.wedgeAfterSeconds = seconds
            } else {
                faults.hangAfterSeconds = seconds
            }
        }
        try section.rejectUnknownKeys(known: ["wedge_after_seconds", "hang_after_seconds"])
        return faults
    }

    private static func parseSPI(_ root: TOMLSection, radio: RadioChip, backend: Backend, hal: HALKind)
        throws(TOMLConfigError) -> SPI?
    {
        guard let section = try root.section("spi") else {
            if backend == .semtechUDP { return nil }
            throw TOMLConfigError(
                file: root.file, line: 0, key: "spi",
                message: "is required for a \(radio.displayName) board (device and speed_hz)")
        }
        let device = try section.required("device", section.string)
        switch hal {
        case .linux:
            let numbers =
                device.hasPrefix("/dev/spidev")
                ? device.dropFirst(11).split(separator: ".", omittingEmptySubsequences: false) : []
            guard numbers.count == 2, numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigitCharacter) })
            else {
                throw section.error(
                    "device", "'\(device)' is not an spidev node (expected /dev/spidevB.C, such as /dev/spidev0.0)")
            }
        case .mock:
            guard device.hasPrefix("mock:") else {
                throw section.error("device", "a mock board's SPI device is named 'mock:…', not '\(device)'")
            }
        }
        let speed = try section.required("speed_hz", section.integer)
        guard speed >= 100_000 else {
            throw section.error("speed_hz", "\(speed) Hz is too slow to be a real SPI clock (at least 100000)")
        }
        guard speed <= Int64(radio.maximumSPISpeedHz) else {
            throw section.error(
                "speed_hz",
                "\(speed) Hz is above the \(radio.displayName)'s \(radio.maximumSPISpeedHz / 1_000_000) MHz maximum")
        }
        let modeNumber = try section.integer("mode") ?? 0
        guard let mode = SPIMode(rawValue: UInt8(clamping: modeNumber)), (0...3).contains(modeNumber) else {
            throw section.error("mode", "SPI mode must be 0, 1, 2 or 3, not \(modeNumber)")
        }
        if mode != .mode0 && radio.family != .concentrator {
            throw section.error("mode", "Semtech radios use SPI mode 0 (CPOL 0, CPHA 0), not mode \(modeNumber)")
        }
        let bits = try section.integer("bits_per_word") ?? 8
        guard bits == 8 else {
            throw section.error("bits_per_word", "Semtech radios use 8-bit words, not \(bits)")
        }
        try section.rejectUnknownKeys(known: ["device", "speed_hz", "mode", "bits_per_word"])
        return SPI(device: device, configuration: SPIConfiguration(mode: mode, bitsPerWord: 8, speedHz: UInt32(speed)))
    }

    private static func parseGPIO(_ root: TOMLSection, backend: Backend, hal: HALKind, spi: SPI?)
        throws(TOMLConfigError) -> [LineRole: GPIOLineSpec]
    {
        guard let section = try root.section("gpio") else {
            throw TOMLConfigError(
                file: root.file, line: 0, key: "gpio",
                message:
                    """
                    is required: a board needs at least its \
                    \(requiredLines(for: backend).map(\.rawValue).joined(separator: " and ")) line
                    """
            )
        }
        let defaultChips = try chipList(section, key: "chip") ?? (hal == .mock ? ["mock"] : raspberryPiHeaderChips)
        var lines: [LineRole: GPIOLineSpec] = [:]
        var lineKeys: [LineRole: String] = [:]
        let allowed = allowedLines(for: backend)
        for key in section.table.keys where key != "chip" {
            guard let role = LineRole(rawValue: key) else {
                throw section.error(
                    key, "unknown line (one of: chip, \(LineRole.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard allowed.contains(role) else {
                throw section.error(
                    key,
                    """
                    a \(backend.rawValue) board has no \(key) line (allowed: \
                    \(allowed.sorted().map(\.rawValue).joined(separator: ", ")))
                    """
                )
            }
            guard let line = try section.section(key) else { continue }
            let offset = try line.required(
                "offset", { (key: String) throws(TOMLConfigError) in try line.integer(key, in: 0...1023) })
            let activeLow = try line.boolean("active_low") ?? false
            let chips = try chipList(line, key: "chip") ?? defaultChips
            try line.rejectUnknownKeys(known: ["offset", "active_low", "chip"])
            lines[role] = GPIOLineSpec(chips: chips, offset: UInt32(offset), activeLow: activeLow)
            lineKeys[role] = key
        }
        for role in requiredLines(for: backend) where lines[role] == nil {
            throw TOMLConfigError(
                file: root.file, line: section.table.line, key: "gpio.\(role.rawValue)",
                message: "is required for a \(backend.rawValue) board but missing")
        }

        if let chipSelect = lines[.chipSelect], !chipSelect.activeLow {
            throw section.error(LineRole.chipSelect.rawValue, "a radio's NSS is active low: add active_low = true")
        }

        // One pin, one purpose.
        var owners: [(role: LineRole, spec: GPIOLineSpec)] = []
        for role in lines.keys.sorted(by: { section.line(of: $0.rawValue) < section.line(of: $1.rawValue) }) {
            let spec = lines[role]!
            if let first = owners.first(where: { $0.spec.offset == spec.offset && sameChip($0.spec.chips, spec.chips) })
            {
                throw section.error(
                    role.rawValue, "offset \(spec.offset) is already used by gpio.\(first.role.rawValue)")
            }
            owners.append((role, spec))
            if let spi, isRaspberryPiHeader(spec.chips), let reserved = raspberryPiSPIPins(for: spi.device)[spec.offset]
            {
                throw section.error(
                    role.rawValue,
                    """
                    GPIO\(spec.offset) is \(reserved), which the kernel's SPI driver holds while \(spi.device) is \
                    in use
                    """
                )
            }
        }
        return lines
    }

    /// Whether a chip list may name the Raspberry Pi's header controller: one of its labels, or
    /// gpiochip0, which it is on every model with current kernels.
    static func isRaspberryPiHeader(_ chips: [String]) -> Bool {
        chips.contains { raspberryPiHeaderChips.contains($0) || $0 == "gpiochip0" || $0 == "/dev/gpiochip0" }
    }

    /// Whether two chip lists may name the same chip: they share a name, or both may be the header.
    static func sameChip(_ a: [String], _ b: [String]) -> Bool {
        !Set(a).isDisjoint(with: b) || (isRaspberryPiHeader(a) && isRaspberryPiHeader(b))
    }

    /// The header pins that the SPI controller behind an spidev node claims on a Raspberry Pi.
    static func raspberryPiSPIPins(for device: String) -> [UInt32: String] {
        // The bus pins, and the chip select of this device: the others are free with an overlay
        // that enables only the chip selects in use (Helium hotspots' button is SPI0 CE1, GPIO7,
        // with `dtoverlay=spi0-1cs`).
        let selects: [String: (offset: UInt32, name: String)] = [
            "/dev/spidev0.0": (8, "SPI0 CE0"), "/dev/spidev0.1": (7, "SPI0 CE1"),
            "/dev/spidev1.0": (18, "SPI1 CE0"), "/dev/spidev1.1": (17, "SPI1 CE1"), "/dev/spidev1.2": (16, "SPI1 CE2"),
        ]
        var pins: [UInt32: String]
        if device.hasPrefix("/dev/spidev0.") {
            pins = [9: "SPI0 MISO", 10: "SPI0 MOSI", 11: "SPI0 SCLK"]
        } else if device.hasPrefix("/dev/spidev1.") {
            pins = [19: "SPI1 MISO", 20: "SPI1 MOSI", 21: "SPI1 SCLK"]
        } else {
            return [:]
        }
        if let select = selects[device] { pins[select.offset] = select.name }
        return pins
    }

    private static func chipList(_ section: TOMLSection, key: String) throws(TOMLConfigError) -> [String]? {
        guard let names = try section.strings(key) else { return nil }
        guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty }) else {
            throw section.error(
                key,
                """
                names no chip (a label such as \"pinctrl-bcm2711\", a path such as \"/dev/gpiochip0\", or \
                \"raspberry-pi\")
                """
            )
        }
        return names.flatMap { $0 == "raspberry-pi" ? raspberryPiHeaderChips : [$0] }
    }

    private static func parseReset(_ root: TOMLSection) throws(TOMLConfigError) -> ResetTiming {
        var timing = ResetTiming(powerOnMilliseconds: 100, pulseMilliseconds: 1, recoveryMilliseconds: 10)
        guard let section = try root.section("reset") else { return timing }
        timing.powerOnMilliseconds = Int(
            try section.integer("power_on_ms", in: 0...10_000) ?? Int64(timing.powerOnMilliseconds))
        timing.pulseMilliseconds = Int(
            try section.integer("pulse_ms", in: 0...10_000) ?? Int64(timing.pulseMilliseconds))
        timing.recoveryMilliseconds = Int(
            try section.integer("recovery_ms", in: 0...10_000) ?? Int64(timing.recoveryMilliseconds))
        try section.rejectUnknownKeys(known: ["power_on_ms", "pulse_ms", "recovery_ms"])
        return timing
    }

    private static func parseFrontEnd(_ root: TOMLSection, radio: RadioChip) throws(TOMLConfigError) -> RadioFrontEnd {
        var frontEnd = RadioFrontEnd(tcxoVoltage: nil, dio2RFSwitch: false, paBoost: radio.family == .sx127x)
        guard let section = try root.section("radio_front_end") else { return frontEnd }
        if let voltage = try section.float("tcxo_voltage") {
            guard radio.family == .sx126x else {
                throw section.error("tcxo_voltage", "only an SX126x powers its TCXO from DIO3")
            }
            // SetDIO3AsTCXOCtrl offers 1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0 and 3.3 V.
            let supported = [1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3]
            guard supported.contains(where: { abs($0 - voltage) < 0.001 }) else {
                throw section.error(
                    "tcxo_voltage",
                    "\(voltage) V is not a DIO3 TCXO voltage (one of: 1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3)")
            }
            frontEnd.tcxoVoltage = voltage
        }
        if let rfSwitch = try section.boolean("dio2_rf_switch") {
            guard radio.family == .sx126x || !rfSwitch else {
                throw section.error("dio2_rf_switch", "only an SX126x drives an RF switch from DIO2")
            }
            frontEnd.dio2RFSwitch = rfSwitch
        }
        if let paBoost = try section.boolean("pa_boost") {
            guard radio.family == .sx127x else {
                throw section.error("pa_boost", "PA_BOOST is an SX127x output")
            }
            frontEnd.paBoost = paBoost
        }
        try section.rejectUnknownKeys(known: ["tcxo_voltage", "dio2_rf_switch", "pa_boost"])
        return frontEnd
    }
}

extension Character {
    var isASCIIDigitCharacter: Bool { ("0"..."9").contains(self) }
}
