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
        #expect(region.downlinkChannels == [923_300_000, 923_900_000, 924_500_000, 925_100_000, 925_700_000, 926_300_000, 926_900_000, 927_500_000])
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
        #expect(Region.as923.slowestUplinkDataRate(carrying: 52)?.index == 0)
    }
}

@Suite struct RegionalTransmitPolicyTests {
    final class FakeClock: @unchecked Sendable {
        var nanoseconds: UInt64 = 10_000_000_000_000
    }

    func request(_ frequencyHz: UInt32, power: Int = 14, size: Int = 20, sf: SpreadingFactor = .sf12) -> TransmitRequest {
        TransmitRequest(payload: [UInt8](repeating: 0, count: size), frequencyHz: frequencyHz, dataRate: LoRaDataRate(spreadingFactor: sf, bandwidth: .khz125), powerDBm: power, invertedIQ: true)
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
        #expect(refusal(us, request(923_300_000, power: 30)) == nil, "no duty cycle in US915")
        #expect(refusal(us, request(868_100_000)) == .frequencyNotAllowed)
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
