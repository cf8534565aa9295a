import Clocks
import LoRaPHY
import Testing

@testable import Radio

@Suite struct RegionTests {
    @Test func eu868() throws {
        let region = Region.eu868
        #expect(region.uplinkChannels == [868_100_000, 868_300_000, 868_500_000])
        #expect(region.loraDataRate(0) == LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125))
        #expect(region.loraDataRate(5) == LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125))
        #expect(region.loraDataRate(6) == LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz250))
        #expect(region.maximumPHYPayload(dataRate: 0) == 64)
        #expect(region.maximumPHYPayload(dataRate: 5) == 255)
        #expect(region.rx2FrequencyHz == 869_525_000 && region.rx2DataRate == 0)
        #expect(region.maximumEIRP == 16)
        #expect(region.maximumEIRP(at: 869_525_000) == 29.15)
        #expect(region.subBand(containing: 868_100_000)?.dutyCycle == 0.01)
        #expect(region.subBand(containing: 869_525_000)?.dutyCycle == 0.1)
        #expect(region.allows(frequencyHz: 867_100_000))
        #expect(!region.allows(frequencyHz: 868_650_000), "the gap between bands M and N")
        #expect(!region.allows(frequencyHz: 902_300_000))
    }

    @Test func us915() {
        let region = Region.us915
        #expect(region.uplinkChannels.count == 72)
        #expect(region.uplinkChannels[0] == 902_300_000)
        #expect(region.uplinkChannels[63] == 914_900_000)
        #expect(region.uplinkChannels[64] == 903_000_000)
        #expect(
            region.downlinkChannels == [
                923_300_000, 923_900_000, 924_500_000, 925_100_000, 925_700_000, 926_300_000, 926_900_000, 927_500_000,
            ])
        #expect(region.loraDataRate(0) == LoRaDataRate(spreadingFactor: .sf10, bandwidth: .khz125))
        #expect(region.loraDataRate(4) == LoRaDataRate(spreadingFactor: .sf8, bandwidth: .khz500))
        #expect(region.index(of: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz500)) == nil, "downlink only")
        #expect(region.index(of: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz500), uplink: false) == 8)
        #expect(region.maximumPHYPayload(dataRate: 0) == 24)
        #expect(region.maximumPHYPayload(dataRate: 8) == 66)
        #expect(region.maximumPHYPayload(dataRate: 9) == 142)
        #expect(region.rx2FrequencyHz == 923_300_000 && region.rx2DataRate == 8)
        #expect(region.maximumEIRP == 30)
    }

    @Test func theOtherRegions() {
        #expect(Region.au915.uplinkChannels[0] == 915_200_000)
        #expect(Region.au915.loraDataRate(6) == LoRaDataRate(spreadingFactor: .sf8, bandwidth: .khz500))
        #expect(Region.as923.uplinkChannels == [923_200_000, 923_400_000])
        #expect(Region.as923.rx2DataRate == 2)
        #expect(Region.in865.uplinkChannels == [865_062_500, 865_402_500, 865_985_000])
        #expect(Region.in865.rx2FrequencyHz == 866_550_000)
        #expect(Region.kr920.uplinkChannels == [922_100_000, 922_300_000, 922_500_000])
        #expect(Region.kr920.maximumEIRP == 14)
        #expect(Region.named("eu868")?.name == .eu868)
        #expect(Region.named("XX999") == nil)
    }

    /// A 52-byte proof-of-coverage beacon goes at the slowest data rate that carries it.
    @Test func slowestDataRateForABeacon() {
        #expect(Region.eu868.slowestUplinkDataRate(carrying: 52)?.index == 0)
        #expect(Region.us915.slowestUplinkDataRate(carrying: 52)?.index == 1, "DR0 carries only 24 bytes")
        #expect(
            Region.as923.slowestUplinkDataRate(carrying: 52)?.index == 3,
            "SF9: SF10 would take 616 ms, past the dwell time")
        #expect(Region.au915.slowestUplinkDataRate(carrying: 52)?.index == 3, "125 kHz in AU915 hops: 400 ms at most")
    }
}

@Suite struct RegionalTransmitPolicyTests {
    final class FakeClock: @unchecked Sendable {
        var nanoseconds: UInt64 = 10_000_000_000_000
    }

    func request(
        _ frequencyHz: UInt32, power: Int = 14, size: Int = 20, sf: SpreadingFactor = .sf12,
        bandwidth: LoRaBandwidth = .khz125, preamble: Int = 8
    ) -> TransmitRequest {
        TransmitRequest(
            payload: [UInt8](repeating: 0, count: size), frequencyHz: frequencyHz,
            dataRate: LoRaDataRate(spreadingFactor: sf, bandwidth: bandwidth), powerDBm: power, invertedIQ: true,
            preambleLength: preamble)
    }

    @Test func dutyCycleIsCountedPerSubBandOverTheLastHour() {
        let clock = FakeClock()
        let policy = RegionalTransmitPolicy(region: .eu868) { clock.nanoseconds }
        // 868.1 MHz is in band M, 1 %: 36 s per hour. A 20-byte SF12 downlink lasts 1.319 s,
        // so 27 fit and the 28th does not.
        let downlink = request(868_100_000)
        var sent = 0
        while case .success = policy.admit(downlink) {
            sent += 1
            clock.nanoseconds += 1_000_000_000
        }
        #expect(sent == 27)
        #expect(refusal(policy, downlink) == .dutyCycleExhausted)
        #expect(refusal(policy, request(869_525_000)) == nil, "another sub-band has its own budget")
        clock.nanoseconds += 3_600_000_000_000
        #expect(refusal(policy, downlink) == nil, "an hour later the budget is back")
    }

    @Test func aCancelledReservationGivesItsAirtimeBack() throws {
        let policy = RegionalTransmitPolicy(region: .eu868)
        let ticket = try policy.admit(request(868_100_000)).get()
        #expect(policy.airtimeUsed(band: 2) > 0)
        policy.cancel(ticket)
        #expect(policy.airtimeUsed(band: 2) == 0)
    }

    @Test func frequencyAndPowerLimits() {
        let policy = RegionalTransmitPolicy(region: .eu868)
        #expect(refusal(policy, request(915_000_000)) == .frequencyNotAllowed)
        #expect(refusal(policy, request(869_300_000)) == .frequencyNotAllowed)
        #expect(refusal(policy, request(868_100_000, power: 17)) == .powerNotAllowed)
        #expect(refusal(policy, request(869_525_000, power: 27)) == nil)
        #expect(refusal(policy, request(869_525_000, power: 30)) == .powerNotAllowed)
        let us = RegionalTransmitPolicy(region: .us915)
        #expect(
            refusal(us, request(923_300_000, power: 30, sf: .sf12, bandwidth: .khz500)) == nil, "no duty cycle in US915"
        )
        #expect(refusal(us, request(868_100_000, sf: .sf10)) == .frequencyNotAllowed)
    }

    /// Reproduced on a running agent before these limits: US915 at 30 dBm sent 902.0 MHz and
    /// 928.0 MHz at 500 kHz (half of each signal outside the band) and SF12 at 7.8 kHz with a
    /// 65,535-symbol preamble (9.6 hours on air).
    @Test func theWholeSignalTheRegionsDataRatesEIRPAndDwellTime() {
        let us = RegionalTransmitPolicy(region: .us915)
        #expect(
            refusal(us, request(902_000_000, power: 30, bandwidth: .khz500)) == .frequencyNotAllowed,
            "901.75–902.25 MHz")
        #expect(
            refusal(us, request(928_000_000, power: 30, bandwidth: .khz500)) == .frequencyNotAllowed,
            "927.75–928.25 MHz")
        #expect(refusal(us, request(927_500_000, power: 30, bandwidth: .khz500)) == nil, "927.25–927.75 MHz")
        let slow = TransmitRequest(
            payload: [1], frequencyHz: 915_000_000, dataRate: LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz7_8),
            powerDBm: 30, invertedIQ: true, preambleLength: 65_535)
        if case .failed(let reason) = refusal(us, slow) {
            #expect(reason.contains("not a data rate of US915"))
        } else {
            Issue.record("SF12 at 7.8 kHz was admitted")
        }
        // 125 kHz in US915 hops: 400 ms at most. SF10 with 20 bytes lasts 371 ms, with 40 bytes 534 ms.
        #expect(refusal(us, request(902_300_000, size: 20, sf: .sf10)) == nil)
        if case .failed(let reason) = refusal(us, request(902_300_000, size: 40, sf: .sf10)) {
            #expect(reason.contains("dwell time"))
        } else {
            Issue.record("a 534 ms frame was admitted")
        }
        #expect(
            refusal(us, request(923_300_000, size: 200, sf: .sf12, bandwidth: .khz500)) == nil,
            "500 kHz is not hopping: no dwell time")

        // EU868: the signal inside one sub-band; the antenna's gain counts.
        let eu = RegionalTransmitPolicy(region: .eu868)
        #expect(
            refusal(eu, request(869_640_000)) == .frequencyNotAllowed,
            "869.5775–869.7025 MHz straddles two sub-bands")
        #expect(
            refusal(eu, request(868_000_000)) == .frequencyNotAllowed,
            "867.9375–868.0625 MHz straddles two sub-bands")
        #expect(refusal(eu, request(868_100_000, sf: .sf7, bandwidth: .khz500)) != nil, "500 kHz is no EU868 data rate")
        let gain = RegionalTransmitPolicy(region: .eu868, antennaGainDBi: 3)
        #expect(
            refusal(gain, request(868_100_000, power: 14)) == .powerNotAllowed, "14 dBm + 3 dBi is over 16.15 dBm EIRP")
        #expect(refusal(gain, request(868_100_000, power: 13)) == nil)
        let preamble = request(869_525_000, sf: .sf12, preamble: 65_535)
        #expect(refusal(eu, preamble) == .dutyCycleExhausted, "an hour-long preamble exceeds even the 10 % sub-band")

        // AS923: 400 ms unless configured off; KR920 and Japan listen first.
        let asia = RegionalTransmitPolicy(region: .as923)
        if case .failed = refusal(asia, request(923_200_000, sf: .sf12)) {
        } else {
            Issue.record("1.3 s on air in AS923 was admitted")
        }
        #expect(
            refusal(RegionalTransmitPolicy(region: .as923, dwellTimeLimited: false), request(923_200_000, sf: .sf12))
                == nil)
        #expect(RegionalTransmitPolicy(region: .kr920).listenBeforeTalk == .kr920)
        // KR920: the edge channels whole; 10 dBm up to 921.9 MHz, 14 dBm from 922.1 MHz.
        let korea = RegionalTransmitPolicy(region: .kr920)
        #expect(refusal(korea, request(920_900_000, power: 10, sf: .sf7)) == nil)
        #expect(refusal(korea, request(923_300_000, power: 14, sf: .sf7)) == nil)
        #expect(refusal(korea, request(921_900_000, power: 14, sf: .sf7)) == .powerNotAllowed)
        #expect(refusal(korea, request(922_100_000, power: 14, sf: .sf7)) == nil)
        // EU868: a signal whose edge is a sub-band's edge belongs to the sub-band it lies in.
        #expect(refusal(eu, request(868_062_500, sf: .sf7)) == nil, "868.000–868.125 MHz lies in 868.0–868.6")
        #expect(RegionalTransmitPolicy(region: .as923).listenBeforeTalk == nil)
        #expect(RegionalTransmitPolicy(region: .as923, listenBeforeTalk: .japan).listenBeforeTalk == .japan)
    }

    @Test func impossibleFramesAreRefused() {
        let policy = RegionalTransmitPolicy(region: .us915)
        var long = request(923_300_000, size: 256)
        #expect(refusal(policy, long)?.isSent == false)
        long.payload = [1]
        long.preambleLength = 2
        if case .failed = refusal(policy, long) {} else { Issue.record("a 2-symbol preamble was admitted") }
    }

    func refusal(_ policy: RegionalTransmitPolicy, _ request: TransmitRequest) -> TransmitOutcome? {
        if case .failure(let refusal) = policy.admit(request) { return refusal.outcome }
        return nil
    }

    @Test func collisionsOnTheWrappingCounter() {
        #expect(TransmitSchedule.overlaps(100, 50, 120, 10))
        #expect(!TransmitSchedule.overlaps(100, 50, 150, 10))
        #expect(TransmitSchedule.overlaps(UInt32.max - 10, 50, 20, 10), "across the wrap")
        #expect(!TransmitSchedule.overlaps(UInt32.max - 10, 5, 20, 10))
        #expect(TransmitSchedule.overlaps(120, 10, 100, 50))
    }
}

/// Listen-before-talk on the SPI radios (KR920: −65 dBm for 6 ms): each chip senses the frame's
/// channel before it keys up, and a busy channel keeps the frame off the air.
@Suite(.capturingLogs, .serialized) struct ListenBeforeTalkTests {
    @Test(arguments: ["mock", "mock-sx1262"])
    func aBusyChannelKeepsTheFrameOffTheAir(board name: String) async throws {
        let board = try mockBoard(name)
        let korea = RadioConfiguration(
            frequencyHz: 922_100_000, dataRate: LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125))
        let radio = try SPIRadio(
            board: board, configuration: korea, policy: RegionalTransmitPolicy(region: .kr920), logger: quiet,
            timing: fastTiming)
        try await radio.start()
        let request = TransmitRequest(
            payload: [0x60, 1, 2, 3], frequencyHz: 922_300_000,
            dataRate: LoRaDataRate(spreadingFactor: .sf9, bandwidth: .khz125), powerDBm: 14, invertedIQ: true)

        #expect(await radio.transmit(request) == .sent(powerDBm: 14), "a free channel (the noise floor, −120 dBm)")
        #expect(board.air.transmissions.count == 1)

        board.air.occupy(frequencyHz: 922_300_000, rssiDBm: -60)
        guard case .failed(let reason) = await radio.transmit(request) else {
            Issue.record("sent on a busy channel")
            return
        }
        #expect(reason.contains("busy"))
        #expect(board.air.transmissions.count == 1, "nothing went on air")

        board.air.occupy(frequencyHz: 922_300_000, rssiDBm: -70)
        #expect(await radio.transmit(request) == .sent(powerDBm: 14), "−70 dBm is under KR920's −65 dBm")
        await radio.stop()
    }
}
