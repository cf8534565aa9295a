@_exported import Frames
import LoRaPHY

/// How a single-channel radio listens.
public struct RadioConfiguration: Hashable, Sendable {
    public var frequencyHz: UInt32
    public var dataRate: LoRaDataRate
    public var codingRate: CodingRate
    public var syncWord: LoRaSyncWord
    /// LoRaWAN uplinks are not inverted; a radio listening for downlinks would invert.
    public var invertedIQ: Bool
    public var preambleLength: Int

    public init(
        frequencyHz: UInt32, dataRate: LoRaDataRate, codingRate: CodingRate = .cr4_5,
        syncWord: LoRaSyncWord = .public, invertedIQ: Bool = false, preambleLength: Int = 8
    ) {
        self.frequencyHz = frequencyHz
        self.dataRate = dataRate
        self.codingRate = codingRate
        self.syncWord = syncWord
        self.invertedIQ = invertedIQ
        self.preambleLength = preambleLength
    }
}

/// Counters a radio backend keeps.
public struct RadioStatistics: Sendable, Hashable {
    public var framesReceived = 0
    public var crcErrors = 0
    /// Frames dropped because nobody consumed the stream fast enough.
    public var framesDropped = 0
    public var framesTransmitted = 0
    public var transmissionsRefused = 0
    /// Times the radio was found not answering, or with its configuration lost, and set up again.
    public var reinitialisations = 0
    /// Datagrams or frames that could not be parsed (semtech_udp).
    public var malformed = 0
    /// Monotonic nanoseconds of the last sign of life: a frame, a TxDone, a health check passed.
    public var lastProgressNanoseconds: UInt64 = 0

    public init() {}
}

/// Why a radio could not start.
public struct RadioError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A source of received frames and a way to transmit: the SX127x and SX126x drivers, or the
/// Semtech UDP backend in front of a concentrator. The pipeline cannot tell them apart.
public protocol Radio: AnyObject, Sendable {
    /// Received frames, in order of reception. One consumer; the stream ends on `stop()`.
    var frames: AsyncStream<RadioFrame> { get }

    /// Brings the radio up and starts receiving. Throws when the radio does not answer.
    func start() async throws(RadioError)

    /// Sends a frame, or says why not.
    func transmit(_ request: TransmitRequest) async -> TransmitOutcome

    /// The backend's microsecond counter now, in the frames' `timestamp` domain.
    func currentTimestamp() async -> UInt32

    func statistics() async -> RadioStatistics

    /// Stops receiving, puts the radio to sleep and ends `frames`.
    func stop() async

    /// From now on, received frames go to `sink` rather than to `frames`: the consumer takes
    /// them without a task hand-over per frame. A frame the sink refuses counts as dropped.
    func deliver(to sink: any FrameSink) async
}

/// A consumer that takes received frames straight from the radio's thread.
public protocol FrameSink: Sendable {
    /// Takes a frame; false when it is full and the frame is dropped.
    func put(_ frame: RadioFrame) -> Bool
    /// The radio stopped: no frame follows.
    func finish()
}

extension Radio {
    /// For radios without a direct path: a task forwards `frames` to the sink.
    public func deliver(to sink: any FrameSink) async {
        let frames = self.frames
        Task {
            for await frame in frames { _ = sink.put(frame) }
            sink.finish()
        }
    }
}
