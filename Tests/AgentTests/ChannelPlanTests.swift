import Foundation
import HAL
import HALMock
import LoRaPHY
import Logging
import Messages
import Radio
import TestSupport
import Testing
import Wire

@testable import Agent

/// ChirpStack's EU868 channel plan, as its network server sends it: eight multi-SF channels,
/// a 250 kHz SF7 channel and a 50 kbit/s FSK channel. Encoded by ChirpStack's published bindings.
let chirpStackEU868 = planJSON(
    [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000, 868_100_000, 868_300_000, 868_500_000]
        .map { lora($0) }.rotated(by: 5)
        + [
            lora(868_300_000, 250_000, [7]),
            #"{"frequency": 868800000, "fsk_modulation_config": {"bandwidth": 125000, "bitrate": 50000}}"#,
        ], version: "eu868-v2")

extension Array {
    /// The elements from `count` on, then the first `count`.
    func rotated(by count: Int) -> [Element] { Array(self[count...] + self[..<count]) }
}

/// Semtech lora_pkt_fwd's global_conf.json, shortened, with its comments.
let semtechGlobalConf = """
    {
        "SX1301_conf": {
            "lorawan_public": true,
            "clksrc": 1, /* radio_1 provides clock to concentrator */
            "antenna_gain": 0, /* antenna gain, in dBi */
            "radio_0": {"enable": true, "type": "SX1257", "freq": 867500000, "rssi_offset": -166.0, "tx_enable": true},
            "radio_1": {"enable": true, "type": "SX1257", "freq": 868500000, "rssi_offset": -166.0, "tx_enable": false},
            "chan_multiSF_0": {"enable": true, "radio": 1, "if": -400000},
            "chan_multiSF_7": {"enable": true, "radio": 0, "if": 400000},
            "chan_Lora_std": {"enable": true, "radio": 1, "if": -200000, "bandwidth": 250000, "spread_factor": 7},
            "chan_FSK": {"enable": true, "radio": 1, "if": 300000, "bandwidth": 125000, "datarate": 50000},
            "tx_lut_0": {"pa_gain": 0, "mix_gain": 8, "rf_power": -6, "dig_gain": 0}
        },
        "gateway_conf": {
            "gateway_ID": "AA555A0000000000", // the concentrator's EUI
            "server_address": "localhost", "serv_port_up": 1700, "serv_port_down": 1700
        }
    }
    """

func chirpStackPlan(_ json: String = chirpStackEU868) throws -> Gw_GatewayConfiguration {
    try Gw_GatewayConfiguration(serializedBytes: try encodeWithChirpStack(json: json, as: "GatewayConfiguration"))
}

func readPlan(_ json: String, region: Region = .eu868) throws -> (ChannelPlan?, String?) {
    switch ChannelPlan.decode(try chirpStackPlan(json), gatewayID: "0016c001ff10a235") {
    case .success(let plan): return (plan, plan.problem(in: region)?.description)
    case .failure(let refusal): return (nil, refusal.description)
    }
}

func lora(_ frequency: Int, _ bandwidth: Int = 125_000, _ factors: [Int] = [7, 8, 9, 10, 11, 12]) -> String {
    let modulation = #"{"bandwidth": \#(bandwidth), "spreading_factors": \#(factors)}"#
    return #"{"frequency": \#(frequency), "lora_modulation_config": \#(modulation)}"#
}

func planJSON(_ channels: [String], version: String = "v1", gateway: String = "0016c001ff10a235") -> String {
    #"{"gateway_id": "\#(gateway)", "version": "\#(version)", "channels": [\#(channels.joined(separator: ","))]}"#
}

@Suite(.capturingLogs) struct ChannelPlanTests {
    @Test func chirpStacksEU868PlanIsReadAndSuitsTheRegion() throws {
        let (decoded, problem) = try readPlan(chirpStackEU868)
        let plan = try #require(decoded)
        #expect(problem == nil)
        #expect(plan.version == "eu868-v2" && plan.channels.count == 10)
        #expect(
            plan.channels[8]
                == .init(frequencyHz: 868_300_000, modulation: .lora(bandwidthHz: 250_000, spreadingFactors: [7])))
        #expect(
            plan.channels[9]
                == .init(frequencyHz: 868_800_000, modulation: .fsk(bandwidthHz: 125_000, bitsPerSecond: 50_000)))
        // What is kept on disk reads back the same.
        let kept = try Gw_GatewayConfiguration(
            serializedBytes: try plan.message(gatewayID: "0016c001ff10a235").serializedBytes() as [UInt8])
        #expect(try ChannelPlan.decode(kept, gatewayID: "0016c001ff10a235").get() == plan)
    }

    /// A plan the region or the hardware cannot honour is refused whole, with the reason.
    @Test func plansTheRegionDoesNotAllowAreRefusedWithTheirReason() throws {
        #expect(try readPlan(planJSON([lora(868_100_000), lora(915_000_000)])).1 == "915.0 MHz is outside EU868")
        #expect(try readPlan(planJSON([lora(869_940_000)])).1 == "869.94 MHz is outside EU868", "the edge past 870 MHz")
        #expect(
            try readPlan(planJSON([lora(868_100_000, 500_000, [7])])).1
                == "SF7 at 500 kHz is not an uplink data rate of EU868")
        #expect(
            try readPlan(planJSON([lora(923_200_000, 125_000, [12])]), region: .as923_2).1
                == "923.2 MHz is outside AS923-2")
        #expect(try readPlan(planJSON([lora(921_400_000, 125_000, [12])]), region: .as923_2).1 == nil)
        #expect(try readPlan(planJSON([lora(505_300_000, 125_000, [7])]), region: .cn470).1 == nil)
        #expect(
            try readPlan(planJSON([lora(868_100_000)], gateway: "0016c001ff10ffff")).1?.contains("meant for gateway")
                == true)
        #expect(try readPlan(planJSON([])).1 == "it has no channel")
        let fsk = #"{"frequency": 902300000, "fsk_modulation_config": {"bandwidth": 125000, "bitrate": 50000}}"#
        #expect(try readPlan(planJSON([fsk]), region: .us915).1 == "FSK at 50000 bit/s is not a data rate of US915")
    }

    /// A single SPI radio: one channel, one spreading factor, LoRa.
    @Test func aSingleRadioTakesOneChannelAtOneDataRate() throws {
        let base = RadioConfiguration(
            frequencyHz: 868_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125))
        let one = try #require(try readPlan(planJSON([lora(867_500_000, 125_000, [9])])).0)
        let configuration = try one.radioConfiguration(from: base).get()
        #expect(configuration.frequencyHz == 867_500_000)
        #expect(configuration.dataRate == LoRaDataRate(spreadingFactor: .sf9, bandwidth: .khz125))
        func refusal(_ json: String) throws -> String? {
            guard case .failure(let refusal) = try #require(try readPlan(json).0).radioConfiguration(from: base) else {
                return nil
            }
            return refusal.description
        }
        #expect(try refusal(chirpStackEU868) == "a single radio listens on one channel at a time; this plan has 10")
        #expect(try refusal(planJSON([lora(867_500_000)]))?.contains("one spreading factor at a time") == true)
        let fsk = #"{"frequency": 868800000, "fsk_modulation_config": {"bandwidth": 125000, "bitrate": 50000}}"#
        #expect(try refusal(planJSON([fsk])) == "the radio receives LoRa only, not FSK")
    }

    /// A concentrator: two radios, eight multi-SF channels, one single-SF and one FSK channel,
    /// each within 400 kHz of its radio's centre; the rest of the file stays as it was.
    @Test func aForwardersConfigurationGetsThePlanAndKeepsTheRest() throws {
        let plan = try #require(try readPlan(chirpStackEU868).0)
        let written = try ForwarderConfiguration.rewrite(Array(semtechGlobalConf.utf8), with: plan).get()
        let root = try JSON.parse(Array(written.utf8))
        let conf = try #require(root["SX1301_conf"])
        #expect(conf["radio_0"]?["freq"]?.number == 867_500_000 && conf["radio_0"]?["enable"]?.bool == true)
        #expect(conf["radio_1"]?["freq"]?.number == 868_450_000)
        #expect(conf["radio_0"]?["type"]?.string == "SX1257" && conf["radio_0"]?["tx_enable"]?.bool == true)
        // Channels in the plan's order: 868.1, 868.3, 868.5 on radio 1; 867.1 … 867.9 on radio 0.
        let offsets = (0..<8).map { conf["chan_multiSF_\($0)"]?["if"]?.number ?? .nan }
        let radios = (0..<8).map { conf["chan_multiSF_\($0)"]?["radio"]?.number ?? .nan }
        #expect(offsets == [-350_000, -150_000, 50_000, -400_000, -200_000, 0, 200_000, 400_000])
        #expect(radios == [1, 1, 1, 0, 0, 0, 0, 0])
        #expect(
            conf["chan_Lora_std"]?["if"]?.number == -150_000 && conf["chan_Lora_std"]?["spread_factor"]?.number == 7)
        #expect(conf["chan_FSK"]?["if"]?.number == 350_000 && conf["chan_FSK"]?["datarate"]?.number == 50_000)
        #expect(conf["tx_lut_0"]?["mix_gain"]?.number == 8 && conf["clksrc"]?.number == 1)
        #expect(root["gateway_conf"]?["serv_port_up"]?.number == 1700)
        #expect(written.contains("\"freq\":867500000"), "frequencies as integers, as Semtech's parser wants them")
        // Python's json module, as the forwarder's own parser would, reads the result.
        let parsed = try run(
            "/usr/bin/python3",
            ["-c", "import json,sys; print(json.load(sys.stdin)['SX1301_conf']['radio_1']['freq'])"],
            input: Data(written.utf8))
        #expect(parsed.output.trimmingCharacters(in: .whitespacesAndNewlines) == "868450000")

        // sx1302_hal's section name; a plan of one channel leaves the other slots and radio off.
        let sx1302 = semtechGlobalConf.replacingOccurrences(of: "SX1301_conf", with: "SX130x_conf")
        let single = try #require(try readPlan(planJSON([lora(868_100_000)])).0)
        let small = try JSON.parse(
            Array(try ForwarderConfiguration.rewrite(Array(sx1302.utf8), with: single).get().utf8))
        #expect(small["SX130x_conf"]?["radio_1"]?["enable"]?.bool == false)
        #expect(small["SX130x_conf"]?["chan_multiSF_7"]?["enable"]?.bool == false)
        #expect(small["SX130x_conf"]?["chan_FSK"]?["enable"]?.bool == false)
        #expect(small["SX130x_conf"]?["chan_multiSF_0"]?["if"]?.number == 0)
    }

    @Test func plansAConcentratorCannotTakeAreRefused() throws {
        func refusal(_ channels: [String], file: String = semtechGlobalConf) throws -> String? {
            let plan = try #require(try readPlan(planJSON(channels)).0)
            guard case .failure(let refusal) = ForwarderConfiguration.rewrite(Array(file.utf8), with: plan) else {
                return nil
            }
            return refusal.description
        }
        let nine = (0..<9).map { lora(867_100_000 + 200_000 * $0) }
        #expect(try refusal(nine) == "9 multi-SF channels; a concentrator has 8")
        #expect(
            try refusal([lora(863_500_000), lora(866_000_000), lora(869_000_000)])
                == "its channels span more than a concentrator's two radios can cover")
        #expect(
            try refusal([lora(868_300_000, 250_000, [7]), lora(868_500_000, 250_000, [7])])?.contains("has one") == true
        )
        #expect(try refusal([lora(868_100_000)], file: "{\"gateway_conf\": {}}")?.contains("no SX1301_conf") == true)
        #expect(try refusal([lora(868_100_000)], file: "not json")?.contains("not JSON") == true)
    }

    /// The service with a forwarder: the file is written and the unit restarted; a failed
    /// restart puts the file back; the plan is kept and comes back after a restart.
    @Test func aForwardersPlanIsWrittenRestartedKeptAndRolledBack() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-plan-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/global_conf.json"
        try semtechGlobalConf.write(toFile: file, atomically: true, encoding: .utf8)
        let calls = directory + "/calls"
        let restart = ["/bin/sh", "-c", "echo \"$0\" >> \(calls)"]
        func service(_ command: [String]) -> ChannelPlanService {
            ChannelPlanService(
                target: .forwarder(configuration: file, unit: "lora-pkt-fwd.service"), region: .eu868,
                gatewayID: "0016c001ff10a235", dataDirectory: directory, logger: Logger(label: "test"),
                restartCommand: command)
        }
        let plans = service(restart)
        #expect(await plans.handle(try chirpStackPlan()) == .applied(version: "eu868-v2"))
        #expect(plans.version == "eu868-v2")
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "lora-pkt-fwd.service\n")
        #expect(try String(contentsOfFile: file + ".orig", encoding: .utf8) == semtechGlobalConf, "the original kept")
        let applied = try String(contentsOfFile: file, encoding: .utf8)
        #expect(applied.contains("\"freq\":868450000"))
        #expect(await plans.handle(try chirpStackPlan()) == .unchanged(version: "eu868-v2"))

        // Outside the region: refused, the file and the version as they were.
        let outside = try chirpStackPlan(planJSON([lora(915_000_000)], version: "us"))
        #expect(await plans.handle(outside) == .refused(.init("915.0 MHz is outside EU868")))
        #expect(plans.version == "eu868-v2" && plans.refusals == 1)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == applied)

        // A restart that fails: the file goes back to what it was.
        let attempts = directory + "/attempts"
        let failing = service([
            "/bin/sh", "-c", "echo \"$0\" >> \(attempts); echo 'Unit lora-pkt-fwd.service not found.' >&2; exit 5",
        ])
        await failing.restore()
        #expect(failing.version == "eu868-v2", "the kept plan")
        let other = try chirpStackPlan(planJSON([lora(868_100_000)], version: "one"))
        guard case .refused(let refusal) = await failing.handle(other) else {
            Issue.record("a plan whose restart failed was not refused")
            return
        }
        #expect(refusal.description.contains("(exit status 5): Unit lora-pkt-fwd.service not found."))
        #expect(try String(contentsOfFile: file, encoding: .utf8) == applied)
        #expect(failing.version == "eu868-v2")
        #expect(
            refusal.description.contains("restarting it again failed too"),
            "the forwarder started again on the old file")
        #expect(try String(contentsOfFile: attempts, encoding: .utf8).split(separator: "\n").count == 2)
        // The same plan again (ChirpStack sends it at every stats report): refused at once for
        // an hour, the forwarder left alone.
        guard case .refused(let again) = await failing.handle(other) else {
            Issue.record("a plan that failed was applied on its second coming")
            return
        }
        #expect(again.description.contains("not tried again yet"))
        #expect(try String(contentsOfFile: attempts, encoding: .utf8).split(separator: "\n").count == 2)

        // Without a file and a unit: refused with the reason.
        let nowhere = ChannelPlanService(
            target: .none("no way"), region: .eu868, gatewayID: "0016c001ff10a235", dataDirectory: directory,
            logger: Logger(label: "test"))
        #expect(await nowhere.handle(other) == .refused(.init("no way")))
    }

    /// The forwarder's file keeps its permissions (set on the new file whatever the agent's
    /// umask, UMask=0077 in its unit), and a symbolic link stays one: the file it points to is
    /// what changes.
    @Test func theForwardersFileKeepsItsModeAndItsLink() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-plan-mode-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let real = directory + "/global_conf.sx1250.EU868.json"
        try semtechGlobalConf.write(toFile: real, atomically: true, encoding: .utf8)
        chmod(real, 0o604)
        let link = directory + "/global_conf.json"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
        let plans = ChannelPlanService(
            target: .forwarder(configuration: link, unit: "lora-pkt-fwd.service"), region: .eu868,
            gatewayID: "0016c001ff10a235", dataDirectory: directory, logger: Logger(label: "test"),
            restartCommand: ["/bin/true"])
        #expect(await plans.handle(try chirpStackPlan()) == .applied(version: "eu868-v2"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == real, "still a link")
        #expect(try String(contentsOfFile: real, encoding: .utf8).contains("\"freq\":868450000"))
        var information = stat()
        #expect(stat(real, &information) == 0 && information.st_mode & 0o777 == 0o604)
    }
}
