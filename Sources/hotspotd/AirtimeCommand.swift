import ArgumentParser
import LoRaPHY
import Radio

struct AirtimeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airtime",
        abstract: "Print a LoRa packet's time on air in milliseconds (Semtech's formula, explicit header, CRC on).",
        discussion: """
            With --region, also whether the region lets a packet of that size go at that data rate: \
            its payload limit and dwell time. --dr names the data rate by the region's index instead \
            of --sf and --bw.
            """
    )

    @Option(help: "Spreading factor, 5 to 12.")
    var sf: Int?

    @Option(help: "Bandwidth in kHz: 125, 250, 500 (or 7.8 … 62.5); a value over 1000 is read as Hz (125000).")
    var bw: Double = 125

    @Option(help: "Coding rate: 4/5, 4/6, 4/7 or 4/8.")
    var cr: String = "4/5"

    @Option(help: "PHY payload size in bytes.")
    var size: Int

    @Option(help: "Preamble length in symbols.")
    var preamble: Int = 8

    @Option(help: "A region (EU868, US915, AS923-2, CN470 …): check its payload limit and dwell time.")
    var region: String?

    @Option(help: "A data rate index of --region, instead of --sf and --bw.")
    var dr: Int?

    func run() throws {
        let plan = try region.map(regionNamed)
        if let dr {
            guard let plan else { throw ValidationError("--dr needs --region: a data rate index means nothing alone") }
            guard sf == nil else { throw ValidationError("--dr or --sf, not both") }
            guard let rate = plan.loraDataRate(dr) else {
                throw ValidationError("DR\(dr) is not a LoRa data rate of \(plan.name.displayName)")
            }
            return try report(rate.spreadingFactor, rate.bandwidth, region: plan, index: dr)
        }
        guard let sf else { throw ValidationError("give --sf (or --region and --dr)") }
        guard let spreadingFactor = SpreadingFactor(rawValue: sf) else {
            throw ValidationError("--sf must be 5 to 12, not \(sf)")
        }
        // Hz where kHz are asked for is the likelier slip than a bandwidth of a megahertz.
        let kHz = bw > 1000 ? bw / 1000 : bw
        guard let bandwidth = LoRaBandwidth(kHz: kHz) else {
            throw ValidationError(
                """
                --bw \(bw) is not a LoRa bandwidth (in kHz: 125, 250, 500, 62.5, 41.7, 31.25, 20.8, 15.6, 10.4, \
                7.8; or in Hz: 125000 …)
                """
            )
        }
        try report(
            spreadingFactor, bandwidth, region: plan,
            index: plan?.index(of: LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth), uplink: false))
    }

    /// Prints the time on air and, for a region, what its rules say of the packet.
    func report(_ spreadingFactor: SpreadingFactor, _ bandwidth: LoRaBandwidth, region: Region?, index: Int?) throws {
        guard let codingRate = CodingRate(cr) else {
            throw ValidationError("--cr must be 4/5, 4/6, 4/7 or 4/8, not \(cr)")
        }
        guard (0...255).contains(size) else {
            throw ValidationError("--size must be 0 to 255 bytes, not \(size)")
        }
        guard (6...65535).contains(preamble) else {
            throw ValidationError("--preamble must be 6 to 65535 symbols, not \(preamble)")
        }
        let airtime = LoRaAirtime(
            modulation: LoRaModulation(spreadingFactor: spreadingFactor, bandwidth: bandwidth, codingRate: codingRate),
            payloadLength: size, preambleLength: preamble
        )
        print(formatMilliseconds(airtime.nanoseconds))
        guard let region else { return }
        let rate = LoRaDataRate(spreadingFactor: spreadingFactor, bandwidth: bandwidth)
        let name = region.name.displayName
        guard let index else {
            print("data rate    \(rate) is not a data rate of \(name)")
            throw ExitCode(1)
        }
        var fits = true
        print("data rate    \(name) DR\(index) = \(rate)")
        if let limit = region.maximumPHYPayload(dataRate: index) {
            fits = fits && size <= limit
            print("payload      \(size) of at most \(limit) bytes" + (size <= limit ? "" : ": TOO LONG"))
        }
        if region.name.isAS923, let limit = region.maximumPHYPayload(dataRate: index, dwellTimeLimited: true) {
            print("             at most \(limit) bytes where the dwell time applies")
        } else if region.name.isAS923 {
            print("             DR\(index) not allowed where the dwell time applies")
        }
        if region.dwellTimeApplies(to: bandwidth) {
            let within = airtime.nanoseconds <= Region.dwellTimeNanoseconds
            fits = fits && within
            print("dwell time   400 ms" + (within ? ": within" : ": OVER"))
        } else {
            print("dwell time   none")
        }
        if !fits { throw ExitCode(1) }
    }
}

/// The region a command line names, or a usage error listing them all.
func regionNamed(_ name: String) throws -> Region {
    guard let region = Region.named(name) else {
        throw ValidationError("unknown region '\(name)' (one of: \(Region.names))")
    }
    return region
}

/// Milliseconds with up to six decimals and no trailing zeros: 56.576, 1482.752, 0.512.
func formatMilliseconds(_ nanoseconds: Int64) -> String {
    let micros = (nanoseconds + 500) / 1000
    let whole = micros / 1000
    var fraction = String(micros % 1000)
    while fraction.count < 3 { fraction = "0" + fraction }
    while fraction.hasSuffix("0") { fraction.removeLast() }
    return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
}
