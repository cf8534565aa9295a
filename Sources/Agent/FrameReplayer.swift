import HALMock
import LoRaPHY
import Radio
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Replays recorded PHYPayloads into the mock board's air, each as soon as the radio's driver
/// has read the one before (`Air.sendAndAwaitReadout`) and while fewer than `ahead` frames wait
/// between the radio and the meter: the load a benchmark offers, as fast as the agent absorbs
/// it and never so fast that the radio's buffer overflows.
///
/// The file is a sequence of frames, each a 2-byte big-endian length and that many bytes. It is
/// read as it is replayed, so memory does not grow with its size.
public struct FrameReplayer: Service, Sendable {
    public let air: Air
    public let path: String
    public let channel: RadioConfiguration
    public let ahead: Int
    /// How many frames the agent has taken from the radio so far.
    public let absorbed: @Sendable () -> Int

    public init(
        air: Air, path: String, channel: RadioConfiguration, ahead: Int = 256, absorbed: @escaping @Sendable () -> Int
    ) {
        self.air = air
        self.path = path
        self.channel = channel
        self.ahead = ahead
        self.absorbed = absorbed
    }

    /// Checks that the file can be opened, before the agent starts.
    public static func check(_ path: String) -> String? {
        guard let file = fopen(path, "rb") else { return "cannot open \(path): \(String(cString: strerror(errno)))" }
        fclose(file)
        return nil
    }

    /// Replays the whole file (or until cancelled); returns how many frames it sent.
    @discardableResult
    public func replay() async -> Int {
        guard let file = fopen(path, "rb") else { return 0 }
        defer { fclose(file) }
        let modulation = LoRaModulation(
            spreadingFactor: channel.dataRate.spreadingFactor, bandwidth: channel.dataRate.bandwidth)
        var header = [UInt8](repeating: 0, count: 2)
        var sent = 0
        var base = absorbed()
        while !Task.isCancelled, fread(&header, 1, 2, file) == 2 {
            // Frames the radio never heard (it was hanging, or being reset) are never taken:
            // when nothing is taken for a second, those ahead are counted as lost.
            var waited = 0
            while sent - (absorbed() - base) >= ahead, !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(1))
                waited += 1
                if waited >= 1000 {
                    base = absorbed() - sent
                    break
                }
            }
            let length = Int(header[0]) << 8 | Int(header[1])
            var payload = [UInt8](repeating: 0, count: length)
            guard length == 0 || fread(&payload, 1, length, file) == length else { break }
            await air.sendAndAwaitReadout(
                AirFrame(
                    payload: payload, frequencyHz: channel.frequencyHz, modulation: modulation,
                    syncWord: channel.syncWord,
                    rssiDBm: -80, snrDB: 7.5, source: "replay"
                ))
            sent += 1
        }
        return sent
    }

    public func run() async {
        _ = await cancelWhenGracefulShutdown { await replay() }
    }
}
