import ArgumentParser
import Clocks
import Cryptography
import HAL
import HALLinux
import HALMock
import Radio
import SecureElement
import TOML
import Wire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

struct BoardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "board",
        abstract: "List board profiles and probe a board's radio.",
        subcommands: [List.self, Probe.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the board profiles found, one a line: name, radio, backend, description.")

        @Option(name: .long, help: "A directory of board profiles, searched before the standard ones.")
        var boardDir: String?

        func run() throws {
            let entries = catalog(boardDir).entries()
            guard !entries.isEmpty else {
                throw ValidationError(
                    "no board profiles found in \(catalog(boardDir).directories.joined(separator: ", "))")
            }
            var invalid = 0
            let width = entries.map(\.name.count).max() ?? 0
            for entry in entries {
                switch entry.profile {
                case .success(let profile):
                    let name = profile.name.padding(to: width)
                    let radio = profile.radio.rawValue.padding(to: 7)
                    let backend = (profile.hal == .mock ? "mock/\(profile.backend.rawValue)" : profile.backend.rawValue)
                        .padding(to: 16)
                    let note = profile.unsupported.map { " (unsupported: \($0))" } ?? ""
                    print("\(name)  \(radio)  \(backend)  \(profile.description)\(note)")
                case .failure(let error):
                    invalid += 1
                    printError("invalid profile: \(error)")
                }
            }
            if invalid > 0 { throw ExitCode(1) }
        }
    }

    struct Probe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reset the board's radio and read its version or status.",
            discussion:
                """
                Exits 0 and prints what answered, or exits 1 with the reason nothing did. Stop hotspotd and any \
                packet forwarder first: the probe needs the radio to itself.
                """
        )

        @Option(
            name: .long,
            help:
                """
                A profile name (see `hotspotd board list`) or the path of a profile file. Default: gateway.board \
                of the configuration file.
                """
        )
        var board: String?

        @Option(name: .long, help: "The configuration file whose gateway.board is probed when --board is not given.")
        var config: String = "/etc/hotspotd/hotspotd.toml"

        @Option(name: .long, help: "A directory of board profiles, searched before the standard ones.")
        var boardDir: String?

        @Option(
            name: .long,
            help:
                """
                The secure element to check, as an ecc:// URI (ecc://i2c-1:96?slot=0). Default: gateway.key of the \
                configuration when it is one, else the profile's secure element.
                """)
        var key: String?

        func run() async throws {
            let profile: BoardProfile
            do {
                let name = try board ?? configuredBoard(config)
                profile = try catalog(boardDir).load(name)
            } catch let error as TOMLConfigError {
                printError(error.description)
                throw ExitCode(1)
            }
            if let reason = profile.unsupported {
                printError("\(profile.name): \(profile.description) cannot run hotspotd: \(reason)")
                throw ExitCode(1)
            }
            let hardware: any BoardHardware
            do {
                hardware = try openBoard(profile)
            } catch {
                printError("\(profile.name): \(error.message)")
                throw ExitCode(1)
            }
            var failed = !(await probeRadio(hardware, profile: profile))
            let configured = board == nil ? configuredKey(config) : nil
            guard let text = key ?? configured.flatMap({ ECCKeyURI.isURI($0) ? $0 : nil }) ?? profile.secureElement?.uri
            else {
                if failed { throw ExitCode(1) }
                return
            }
            do {
                let uri = try ECCKeyURI(parsing: text)
                let chip = ECC608(bus: try hardware.openI2C(uri.bus), address: uri.address)
                let report = try SecureElementReport.probe(chip, slot: uri.slot)
                print(describe(report))
                if report.problem != nil { failed = true }
            } catch let error as CryptoError {
                printError("--key: \(error.message)")
                failed = true
            } catch let error as HardwareError {
                printError("secure element: \(error.message)")
                failed = true
            } catch let error as ECC608Error {
                printError("secure element: \(error.message)")
                failed = true
            }
            if failed { throw ExitCode(1) }
        }

        /// Probes the radio; says what answered, or why nothing did.
        func probeRadio(_ hardware: any BoardHardware, profile: BoardProfile) async -> Bool {
            do {
                let report = try await BoardProbe.probe(hardware)
                print("\(profile.name): \(report.chip) answered")
                for finding in report.findings { print("  \(finding)") }
                return true
            } catch {
                printError("\(profile.name): \(error.message)")
                return false
            }
        }

        func describe(_ report: SecureElementReport) -> String {
            let model = report.revision[3] >= 0x03 ? "ATECC608B" : "ATECC608A"
            let configuration = report.configurationLocked ? "locked" : "UNLOCKED"
            let data = report.dataLocked ? "locked" : "UNLOCKED"
            let slot = report.slotHoldsP256Key ? "holds a P-256 private key" : "holds no P-256 private key"
            var lines = [
                """
                secure element: \(model) (revision \(Hex.encode(report.revision))) answered on \(report.device), \
                serial \(Hex.encode(report.serialNumber))
                """,
                "  configuration zone \(configuration), data zone \(data)",
                "  slot \(report.slot) \(slot)",
            ]
            if let key = report.publicKey {
                lines.append("  key type \(key.keyType.rawValue), address \(key.address)")
                lines.append("  gateway id \(GatewayIdentity.derivedGatewayID(of: key))")
            }
            if let problem = report.problem { lines.append("  problem: \(problem)") }
            return lines.joined(separator: "\n")
        }
    }
}

/// The `gateway.board` of a configuration file, for commands given no `--board`.
func configuredBoard(_ path: String) throws(TOMLConfigError) -> String {
    let text: String
    do {
        text = try readTextFile(path)
    } catch {
        throw TOMLConfigError(
            file: path, line: 0, key: "",
            message:
                """
                no --board given, and the configuration \
                \(error.message.replacing("cannot read: ", with: "cannot be read: ")): name a board with --board \
                (see `hotspotd board list`)
                """
        )
    }
    let root = try TOMLSection.parse(text, file: path)
    guard let board = try root.section("gateway")?.string("board") else {
        throw TOMLConfigError(
            file: path, line: 0, key: "gateway.board",
            message: "is not set: name a board with --board (see `hotspotd board list`)")
    }
    return board
}

/// The `gateway.key` (or `key_file`) of a configuration file, when it can be read and has one.
func configuredKey(_ path: String) -> String? {
    guard let text = try? readTextFile(path), let root = try? TOMLSection.parse(text, file: path),
        let gateway = try? root.section("gateway")
    else { return nil }
    return (try? gateway.string("key")) ?? (try? gateway.string("key_file")) ?? nil
}

/// The board catalog: `--board-dir` first, then the standard places.
func catalog(_ extra: String?) -> BoardCatalog {
    var catalog = BoardCatalog.standard(environment: environment(), executablePath: executablePath())
    if let extra { catalog.directories.insert(extra, at: 0) }
    return catalog
}

/// Opens a board on the backend its profile names.
func openBoard(_ profile: BoardProfile, air: Air = Air(timeScale: 0)) throws(HardwareError) -> any BoardHardware {
    switch profile.hal {
    case .mock: try MockBoard(profile: profile, air: air)
    case .linux: LinuxBoard(profile: profile)
    }
}

func environment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}

func executablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard count > 0 else { return nil }
    return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func printError(_ message: String) {
    writeStandardError("hotspotd: " + message + "\n")
}

/// Writes `text` to standard error as it is.
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
            if written <= 0 { break }
            offset += written
        }
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
