import Agent
import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

@main
struct Hotspotd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotspotd",
        abstract:
            """
            A LoRa hotspot agent: radios over SPI and GPIO or a packet forwarder, uplinks over MQTT, metered data \
            credits, proof of coverage.
            """,
        version: hotspotdVersion,
        subcommands: [
            RunCommand.self, StatusCommand.self, ConfigCommand.self, BoardCommand.self, KeyCommand.self,
            FrameCommand.self, CommandCommand.self, DevicesCommand.self, CreditsCommand.self, ReportCommand.self,
            AirtimeCommand.self,
        ]
    )

    /// Runs the command; every error is said in one style, `hotspotd: <what> (<where>)`, on
    /// standard error, followed for a usage error by the usage of the subcommand it concerns.
    /// Exit codes: 0, 1 (failed), 3 (`status`: not running), 64 (usage), 65 (bad input data),
    /// 66 (no input file), 78 (configuration).
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // Help, the version, and exit codes of commands that have said why already.
            let code = exitCode(for: error)
            if error is ExitCode || code == .success { exit(withError: error) }
            let (path, command) = commandPath(arguments)
            var what = message(for: error)
            if let first = what.first, first.isUppercase, what.dropFirst().first?.isLowercase == true {
                what = first.lowercased() + what.dropFirst()
            }
            printError("\(what) (\(path.joined(separator: " ")))")
            if code == .validationFailure {
                writeStandardError(
                    "usage: " + usageString(for: command) + "\n  see '\(path.joined(separator: " ")) --help'\n")
            }
            Glibc.exit(code.rawValue)
        }
    }

    /// The subcommand the arguments name (`hotspotd command sign`), as far as they name one.
    static func commandPath(_ arguments: [String]) -> (names: [String], command: ParsableCommand.Type) {
        var names = [configuration.commandName ?? "hotspotd"]
        var command: ParsableCommand.Type = Hotspotd.self
        for argument in arguments {
            guard let next = command.configuration.subcommands.first(where: { $0._commandName == argument }) else {
                break
            }
            names.append(argument)
            command = next
        }
        return (names, command)
    }
}
