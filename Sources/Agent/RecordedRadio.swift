import ChirpStack
import Frames
import Radio

/// A radio whose every transmission (downlink or beacon) is counted, with its outcome, in the
/// traffic statistics that `event/stats` reports.
final class RecordedRadio: Radio {
    let radio: any Radio
    let statistics: TrafficStatistics

    init(_ radio: any Radio, statistics: TrafficStatistics) {
        self.radio = radio
        self.statistics = statistics
    }

    var frames: AsyncStream<RadioFrame> { radio.frames }
    func start() async throws(RadioError) { try await radio.start() }
    func currentTimestamp() async -> UInt32 { await radio.currentTimestamp() }
    func statistics() async -> RadioStatistics { await radio.statistics() }
    func stop() async { await radio.stop() }
    func deliver(to sink: any FrameSink) async { await radio.deliver(to: sink) }

    func transmit(_ request: TransmitRequest) async -> TransmitOutcome {
        let outcome = await radio.transmit(request)
        statistics.recordTransmission(request, outcome: outcome)
        return outcome
    }
}
