import LoRaPHY
import Testing

@Suite struct AirtimeTests {
    // Semtech's formula worked by hand: SF7/125 kHz, 20 bytes, CR 4/5, CRC, explicit header:
    // payload symbols 8 + ceil((160 − 28 + 28 + 16) / 28) · 5 = 43; (8 + 4.25 + 43) · 1.024 ms.
    @Test func sf7At125kHz() {
        let airtime = LoRaAirtime(modulation: .init(spreadingFactor: .sf7, bandwidth: .khz125), payloadLength: 20)
        #expect(airtime.payloadSymbols == 43)
        #expect(airtime.nanoseconds == 56_576_000)
        #expect(!airtime.lowDataRateOptimize)
    }

    // SF12/125 kHz needs low-data-rate optimisation: 8 + ceil(156 / 40) · 5 = 28 symbols;
    // (12.25 + 28) · 32.768 ms.
    @Test func sf12At125kHzUsesLowDataRateOptimize() {
        let airtime = LoRaAirtime(modulation: .init(spreadingFactor: .sf12, bandwidth: .khz125), payloadLength: 20)
        #expect(airtime.lowDataRateOptimize)
        #expect(airtime.payloadSymbols == 28)
        #expect(airtime.nanoseconds == 1_318_912_000)
    }

    @Test func lowDataRateOptimizeFollowsTheSixteenMillisecondRule() {
        #expect(LoRaAirtime.requiresLowDataRateOptimize(.init(spreadingFactor: .sf11, bandwidth: .khz125)))
        #expect(!LoRaAirtime.requiresLowDataRateOptimize(.init(spreadingFactor: .sf10, bandwidth: .khz125)))
        #expect(!LoRaAirtime.requiresLowDataRateOptimize(.init(spreadingFactor: .sf11, bandwidth: .khz250)))
        #expect(!LoRaAirtime.requiresLowDataRateOptimize(.init(spreadingFactor: .sf12, bandwidth: .khz500)))
    }

    @Test func bandwidthsParseFromHzAndKHz() {
        #expect(LoRaBandwidth(hz: 125_000) == .khz125)
        #expect(LoRaBandwidth(hz: 7_812) == .khz7_8)
        #expect(LoRaBandwidth(kHz: 62.5) == .khz62_5)
        #expect(LoRaBandwidth(kHz: 100) == nil)
        #expect(CodingRate("4/7") == .cr4_7)
        #expect(CodingRate("4/9") == nil)
    }

    @Test func sx126xSyncWordFormRoundTrips() {
        #expect(LoRaSyncWord.public.sx126xRegisterValue == 0x3444)
        #expect(LoRaSyncWord.private.sx126xRegisterValue == 0x1424)
        #expect(LoRaSyncWord(sx126xRegisterValue: 0x3444) == .public)
        #expect(LoRaSyncWord(sx126xRegisterValue: 0x1424) == .private)
    }
}
