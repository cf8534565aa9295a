import ArgumentParser
import LoRaPHY

struct AirtimeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "airtime",
        abstract: "Print a LoRa packet's time on air in milliseconds (Semtech's formula, explicit header, CRC on)."
    )

    @Option(help: "Spreading factor, 5 to 12.")
    var sf: Int

    @Option(help: "Bandwidth in kHz: 125, 250, 500 (or 7.8 … 62.5); a value over 1000 is read as Hz (125000).")
    var bw: Double = 125

    @Option(help: "Coding rate: 4/5, 4/6, 4/7 or 4/8.")
    var cr: String = "4/5"

    @Option(help: "PHY payload size in bytes.")
    var size: Int

    @Option(help: "Preamble length in symbols.")
    var preamble: Int = 8

    func run() throws {
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
    }
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
