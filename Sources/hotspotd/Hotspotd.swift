import Agent
import ArgumentParser

@main
struct Hotspotd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotspotd",
        abstract: "A LoRa hotspot agent: radios over SPI and GPIO or a packet forwarder, uplinks over MQTT, metered data credits, proof of coverage.",
        version: hotspotdVersion,
        subcommands: [RunCommand.self, StatusCommand.self, BoardCommand.self, KeyCommand.self, FrameCommand.self, CommandCommand.self, DevicesCommand.self, CreditsCommand.self, ReportCommand.self, AirtimeCommand.self]
    )
}


