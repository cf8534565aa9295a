import LoRaPHY
import Testing

@testable import Radio

/// Every region Helium serves, pinned against LoRaWAN Regional Parameters RP002-1.0.4 (and,
/// for CN470, the 1.0.3rA plan Helium runs), and against Helium's region plans
/// (`helium/lorawan-h3` `region_params/*.json`).
@Suite struct RegionalPlanTests {
    let sf12 = LoRaDataRate(spreadingFactor: .sf12, bandwidth: .khz125)
    let sf9 = LoRaDataRate(spreadingFactor: .sf9, bandwidth: .khz125)

    @Test func namesAsPeopleWriteThem() {
        #expect(Region.named("AS923-1")?.name == .as923)
        #expect(Region.named("as923_1")?.name == .as923)
        #expect(Region.named("AS923")?.name == .as923)
        #expect(Region.named("AS923-1B")?.name == .as923_1b)
        #expect(Region.named("as923-2")?.name == .as923_2)
        #expect(Region.named("AS923_3")?.name == .as923_3)
        #expect(Region.named("AS923-4")?.name == .as923_4)
        #expect(Region.named("ru864")?.name == .ru864)
        #expect(Region.named("CN470")?.name == .cn470)
        #expect(Region.named("EU433")?.name == .eu433)
        #expect(Region.named("AS923-5") == nil && Region.named("CN779") == nil)
        #expect(Region.Name.allCases.count == 13)
        #expect(Region.Name.as923_2.displayName == "AS923-2" && Region.Name.as923.displayName == "AS923-1")
        for name in Region.Name.allCases {
            #expect(Region.named(name).name == name)
            #expect(Region.named(name.displayName)?.name == name)
        }
    }

    /// RP002-1.0.4 §2.8: 923.2 and 923.4 MHz moved by 0, −1.8, −6.6 and −5.9 MHz; RX2 the first
    /// at DR2; DR0–5 SF12–SF7/125, DR6 SF7/250, DR7 FSK; 16 dBm; M per DR with and without
    /// the dwell time (Table 2.8.6).
    @Test(arguments: [
        (Region.as923, UInt32(923_200_000)), (.as923_1b, 923_200_000), (.as923_2, 921_400_000),
        (.as923_3, 916_600_000), (.as923_4, 917_300_000),
    ])
    func as923Groups(region: Region, first: UInt32) {
        #expect(region.uplinkChannels == [first, first + 200_000])
        #expect(region.rx2FrequencyHz == first && region.rx2DataRate == 2)
        #expect(region.maximumEIRP == 16)
        #expect(region.loraDataRate(0) == sf12)
        #expect(region.loraDataRate(6) == LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz250))
        #expect(region.dataRates[7] == .fsk(bitsPerSecond: 50_000))
        #expect((0...7).map { region.maximumMACPayload[$0] } == [59, 59, 123, 123, 250, 250, 250, 250])
        #expect(
            (0...7).map { region.maximumPHYPayload(dataRate: $0, dwellTimeLimited: true) } == [
                nil, nil, 24, 66, 138, 255, 255, 255,
            ])
        #expect(region.dwellTimeApplies(to: .khz125) && !region.dwellTimeApplies(to: .khz125, as923DwellTime: false))
        #expect(region.band.contains(first) && region.band.contains(first + 200_000))
        // RX1: offsets 0–7, 6 and 7 meaning −1 and −2; DR2 at least with the downlink dwell time.
        #expect(
            (0...7).map { region.rx1DataRate(uplink: 5, offset: $0, downlinkDwellTime: false) } == [
                5, 4, 3, 2, 1, 0, 6, 7,
            ])
        #expect((0...7).map { region.rx1DataRate(uplink: 5, offset: $0) } == [5, 4, 3, 2, 2, 2, 6, 7])
        #expect(region.rx1DataRate(uplink: 5, offset: 8) == nil)
        #expect(region.rx1Frequency(uplinkHz: first + 200_000) == first + 200_000)
    }

    @Test func as923BandsOfEachGroup() {
        #expect(Region.as923.band == 915_000_000...928_000_000)
        #expect(Region.as923_2.band == 920_000_000...923_000_000)
        #expect(Region.as923_3.band == 915_000_000...921_000_000)
        #expect(Region.as923_4.band == 917_000_000...920_000_000)
    }

    /// RP002-1.0.4 §2.14.
    @Test func ru864() {
        let region = Region.ru864
        #expect(region.uplinkChannels == [868_900_000, 869_100_000])
        #expect(region.band == 864_000_000...870_000_000)
        #expect(region.rx2FrequencyHz == 869_100_000 && region.rx2DataRate == 0)
        #expect(region.maximumEIRP == 16)
        #expect((0...7).map { region.maximumMACPayload[$0] } == [59, 59, 59, 123, 250, 250, 250, 250])
        #expect(region.loraDataRate(6) == LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz250))
        #expect(region.subBand(containing: 864_100_000)?.dutyCycle == 0.01)
        #expect((0...5).map { region.rx1DataRate(uplink: 3, offset: $0) } == [3, 2, 1, 0, 0, 0])
        #expect(region.rx1DataRate(uplink: 3, offset: 6) == nil)
        #expect(!region.dwellTimeApplies(to: .khz125))
    }

    /// CN470 as Helium runs it: Regional Parameters 1.0.3rA §2.6.
    @Test func cn470() {
        let region = Region.cn470
        #expect(region.uplinkChannels.count == 96)
        #expect(region.uplinkChannels.first == 470_300_000 && region.uplinkChannels.last == 489_300_000)
        #expect(region.downlinkChannels.count == 48)
        #expect(region.downlinkChannels.first == 500_300_000 && region.downlinkChannels.last == 509_700_000)
        // RX1 on uplink channel mod 48: channel 50 (480.3 MHz) answers on downlink channel 2.
        #expect(region.rx1Frequency(uplinkHz: 480_300_000) == 500_700_000)
        #expect(region.rx1Frequency(uplinkHz: 470_300_000) == 500_300_000)
        #expect(region.rx1Frequency(uplinkHz: 470_350_000) == nil, "off the channel grid")
        #expect(region.rx2FrequencyHz == 505_300_000 && region.rx2DataRate == 0)
        #expect(region.maximumEIRP == 19.15)
        #expect(
            region.dataRates.count == 6
                && region.loraDataRate(5) == LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125))
        #expect((0...5).map { region.maximumMACPayload[$0] } == [59, 59, 59, 123, 250, 250])
        #expect(region.subBands.isEmpty, "no duty cycle")
    }

    /// RP002-1.0.4 §2.7.
    @Test func eu433() {
        let region = Region.eu433
        #expect(region.uplinkChannels == [433_175_000, 433_375_000, 433_575_000])
        #expect(region.rx2FrequencyHz == 434_665_000 && region.rx2DataRate == 0)
        #expect(region.maximumEIRP == 12.15)
        #expect((0...7).map { region.maximumMACPayload[$0] } == [59, 59, 59, 123, 250, 250, 250, 250])
        #expect(region.subBand(containing: 434_665_000)?.dutyCycle == 0.1)
        #expect(!region.allows(frequencyHz: 435_000_000))
        #expect((0...5).map { region.rx1DataRate(uplink: 5, offset: $0) } == [5, 4, 3, 2, 1, 0])
    }

    /// The RX1 data-rate tables of the other regions (RP002-1.0.4; ChirpStack's
    /// `lrwn/src/region` tables).
    @Test func rx1DataRatesOfTheOtherRegions() {
        let us = Region.us915
        #expect(
            (0...4).map { up in (0...3).map { us.rx1DataRate(uplink: up, offset: $0)! } } == [
                [10, 9, 8, 8], [11, 10, 9, 8], [12, 11, 10, 9], [13, 12, 11, 10], [13, 13, 12, 11],
            ])
        #expect(us.rx1DataRate(uplink: 0, offset: 4) == nil && us.rx1DataRate(uplink: 8, offset: 0) == nil)
        #expect(us.rx1Frequency(uplinkHz: 902_300_000) == 923_300_000)
        #expect(us.rx1Frequency(uplinkHz: 904_100_000) == 923_900_000, "channel 9: 9 mod 8 = 1")
        #expect(us.rx1Frequency(uplinkHz: 904_600_000) == 923_900_000, "500 kHz channel 65: 65 mod 8 = 1")
        let au = Region.au915
        #expect(
            (0...6).map { up in (0...5).map { au.rx1DataRate(uplink: up, offset: $0)! } } == [
                [8, 8, 8, 8, 8, 8], [9, 8, 8, 8, 8, 8], [10, 9, 8, 8, 8, 8], [11, 10, 9, 8, 8, 8],
                [12, 11, 10, 9, 8, 8], [13, 12, 11, 10, 9, 8], [13, 13, 12, 11, 10, 9],
            ])
        let india = Region.in865
        #expect(
            [0, 1, 2, 3, 4, 5, 7].map { up in (0...7).map { india.rx1DataRate(uplink: up, offset: $0)! } } == [
                [0, 0, 0, 0, 0, 0, 1, 2], [1, 0, 0, 0, 0, 0, 2, 3], [2, 1, 0, 0, 0, 0, 3, 4], [3, 2, 1, 0, 0, 0, 4, 5],
                [4, 3, 2, 1, 0, 0, 5, 5], [5, 4, 3, 2, 1, 0, 5, 5], [7, 6, 5, 4, 3, 2, 7, 7],
            ])
        #expect((0...5).map { Region.eu868.rx1DataRate(uplink: 2, offset: $0) } == [2, 1, 0, 0, 0, 0])
        #expect((0...5).map { Region.kr920.rx1DataRate(uplink: 4, offset: $0) } == [4, 3, 2, 1, 0, 0])
    }

    /// Helium's plans: the channels in order, the largest EIRP, and the data rate a 51-byte
    /// beacon gets (the first spreading factor whose packet holds 51 bytes).
    @Test func heliumPlans() {
        func steps(_ first: UInt32, _ count: Int) -> [UInt32] { (0..<count).map { first + 200_000 * UInt32($0) } }
        let expected: [(Region, [UInt32], Double, LoRaDataRate)] = [
            (.us915, steps(903_900_000, 8), 36, sf9),
            (.eu868, steps(867_100_000, 8), 16.1, sf12),
            (.au915, steps(916_800_000, 8), 30, sf9),
            (.as923, steps(923_200_000, 8), 16, sf9),
            (.as923_1b, steps(922_000_000, 8), 16, sf9),
            (.as923_2, steps(921_400_000, 8), 16, sf9),
            (.as923_3, steps(916_600_000, 8), 16, sf9),
            (.as923_4, steps(917_300_000, 8), 16, sf9),
            (.kr920, steps(922_100_000, 7), 14, sf9),
            (.in865, [865_062_500, 865_402_500, 865_985_000], 30, sf9),
            (.ru864, steps(864_100_000, 5) + [868_900_000, 869_100_000], 16, sf9),
            (.cn470, steps(486_300_000, 8), 19.1, sf9),
            (.eu433, [433_175_000, 433_375_000, 433_575_000], 12.1, sf9),
        ]
        #expect(expected.count == Region.Name.allCases.count)
        for (region, channels, eirp, dataRate) in expected {
            #expect(region.helium.channels == channels, "\(region.name)")
            #expect(region.helium.maximumEIRP == eirp, "\(region.name)")
            #expect(region.helium.dataRate(carrying: 51) == dataRate, "\(region.name)")
            // Every channel of the plan is one the region lets a gateway transmit on.
            for channel in channels { #expect(region.allows(frequencyHz: channel), "\(region.name) \(channel)") }
        }
    }

    /// The transmit rules hold in each new region: inside the band, at most the EIRP limit,
    /// the region's data rates, AS923's dwell time, the duty cycle where there is one.
    @Test func transmitRulesOfTheNewRegions() {
        func request(_ frequency: UInt32, power: Int = 10, size: Int = 20, _ rate: LoRaDataRate) -> TransmitRequest {
            TransmitRequest(
                payload: [UInt8](repeating: 0, count: size), frequencyHz: frequency, dataRate: rate, powerDBm: power,
                invertedIQ: true, preambleLength: 8)
        }
        let sf7 = LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz125)
        let as2 = RegionalTransmitPolicy(region: .as923_2)
        #expect(as2.refusal(of: request(921_400_000, sf7)) == nil)
        #expect(as2.refusal(of: request(923_200_000, sf7)) == .frequencyNotAllowed, "AS923-1's channel, not -2's")
        #expect(as2.refusal(of: request(921_400_000, power: 17, sf7)) == .powerNotAllowed)
        if case .failed(let reason)? = as2.refusal(of: request(921_400_000, size: 40, sf12)) {
            #expect(reason.contains("dwell time"))
        } else {
            Issue.record("an SF12 frame of 40 bytes lasts over 400 ms")
        }
        #expect(
            RegionalTransmitPolicy(region: .as923_2, dwellTimeLimited: false).refusal(
                of: request(921_400_000, size: 40, sf12)) == nil)
        let cn = RegionalTransmitPolicy(region: .cn470)
        #expect(cn.refusal(of: request(505_300_000, power: 19, sf12)) == nil)
        #expect(cn.refusal(of: request(505_300_000, power: 20, sf12)) == .powerNotAllowed)
        #expect(
            cn.refusal(of: request(505_300_000, LoRaDataRate(spreadingFactor: .sf7, bandwidth: .khz250))) != nil,
            "CN470 has no 250 kHz data rate")
        let eu433 = RegionalTransmitPolicy(region: .eu433)
        #expect(eu433.refusal(of: request(434_665_000, power: 12, sf12)) == nil)
        #expect(eu433.refusal(of: request(434_665_000, power: 13, sf12)) == .powerNotAllowed)
        #expect(eu433.refusal(of: request(868_100_000, sf12)) == .frequencyNotAllowed)
        let ru = RegionalTransmitPolicy(region: .ru864)
        #expect(ru.refusal(of: request(869_100_000, power: 16, sf12)) == nil)
        #expect(ru.refusal(of: request(863_900_000, sf12)) == .frequencyNotAllowed)
        // RU864's 1 %: 36 s an hour; a 20-byte SF12 frame lasts 1.319 s, so 27 fit.
        var sent = 0
        while case .success = ru.admit(request(869_100_000, sf12)) { sent += 1 }
        #expect(sent == 27)
        #expect(RegionalTransmitPolicy(region: .kr920).listenBeforeTalk == .kr920)
        #expect(RegionalTransmitPolicy(region: .as923_3).listenBeforeTalk == nil)
    }
}
