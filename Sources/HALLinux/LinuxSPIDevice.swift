import CSPI
import Clocks
import HAL
import Synchronization

/// An SPI device through the kernel's spidev driver (`/dev/spidevB.C`).
public final class LinuxSPIDevice: SPIDevice {
    public let path: String
    private let state: Mutex<(fd: Int32, configuration: SPIConfiguration)>

    /// Opens `path` and applies `configuration`.
    public init(path: String, configuration: SPIConfiguration) throws(HardwareError) {
        self.path = path
        let fd = hs_spi_open(path)
        guard fd >= 0 else {
            throw DeviceErrorMapping.spi(errno: -fd, path: path, operation: "open")
        }
        let result = hs_spi_configure(fd, configuration.mode.rawValue, configuration.bitsPerWord, configuration.speedHz)
        guard result == 0 else {
            hs_spi_close(fd)
            throw DeviceErrorMapping.spi(errno: -result, path: path, operation: "configure")
        }
        state = Mutex((fd, configuration))
    }

    deinit {
        state.withLock { hs_spi_close($0.fd) }
    }

    public var configuration: SPIConfiguration {
        state.withLock { $0.configuration }
    }

    public func configure(_ configuration: SPIConfiguration) throws(HardwareError) {
        let result: Int32 = state.withLock { state in
            let result = hs_spi_configure(
                state.fd, configuration.mode.rawValue, configuration.bitsPerWord, configuration.speedHz)
            if result == 0 { state.configuration = configuration }
            return result
        }
        guard result == 0 else {
            throw DeviceErrorMapping.spi(errno: -result, path: path, operation: "configure")
        }
    }

    public func transfer(_ segments: [SPISegment]) throws(HardwareError) -> [[UInt8]] {
        guard !segments.isEmpty else { return [] }
        guard segments.count <= Int(HS_SPI_MAX_SEGMENTS) else {
            throw HardwareError(
                .invalidRequest,
                "\(segments.count) segments in one SPI message; the kernel takes at most \(HS_SPI_MAX_SEGMENTS)")
        }
        // Contiguous buffers for every segment, so the C side sees stable pointers.
        let total = segments.reduce(0) { $0 + $1.length }
        var tx = [UInt8](repeating: 0, count: total)
        var offset = 0
        for segment in segments {
            tx.replaceSubrange(offset..<offset + segment.write.count, with: segment.write)
            offset += segment.length
        }
        var rx = [UInt8](repeating: 0, count: total)
        let result: Int32 = tx.withUnsafeBufferPointer { txBuffer in
            rx.withUnsafeMutableBufferPointer { rxBuffer in
                var descriptors: [hs_spi_segment] = []
                descriptors.reserveCapacity(segments.count)
                var position = 0
                for segment in segments {
                    descriptors.append(
                        hs_spi_segment(
                            tx: txBuffer.baseAddress.map { $0 + position },
                            rx: rxBuffer.baseAddress.map { $0 + position },
                            length: UInt32(segment.length),
                            speed_hz: 0,
                            delay_usecs: segment.delayMicroseconds,
                            bits_per_word: 0,
                            cs_change: 0
                        ))
                    position += segment.length
                }
                return state.withLock { state in
                    hs_spi_transfer(state.fd, descriptors, UInt32(descriptors.count))
                }
            }
        }
        guard result == 0 else {
            throw DeviceErrorMapping.spi(errno: -result, path: path, operation: "transfer")
        }
        var replies: [[UInt8]] = []
        replies.reserveCapacity(segments.count)
        offset = 0
        for segment in segments {
            replies.append(Array(rx[offset..<offset + segment.length]))
            offset += segment.length
        }
        return replies
    }
}
