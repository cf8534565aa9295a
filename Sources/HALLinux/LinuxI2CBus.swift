import CI2C
import HAL
import Synchronization

/// An I2C bus through the kernel's i2c-dev driver (`/dev/i2c-N`): a single message goes out
/// as a plain read or write after selecting the target (I2C_SLAVE), a combined transaction
/// as one I2C_RDWR.
public final class LinuxI2CBus: I2CBus {
    public let path: String
    /// The descriptor and the target last selected with I2C_SLAVE.
    private let state: Mutex<(fd: Int32, selected: UInt8?)>

    /// Opens `path`; `timeout` bounds one transaction (the kernel counts in 10 ms steps).
    public init(path: String, timeout: Duration = .milliseconds(100)) throws(HardwareError) {
        self.path = path
        let fd = hs_i2c_open(path)
        guard fd >= 0 else { throw DeviceErrorMapping.i2c(errno: -fd, path: path, operation: "open") }
        let milliseconds = UInt32(
            clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let configured = hs_i2c_configure(fd, max(milliseconds, 10), 1)
        guard configured == 0 else {
            hs_i2c_close(fd)
            throw DeviceErrorMapping.i2c(errno: -configured, path: path, operation: "configure")
        }
        state = Mutex((fd, nil))
    }

    deinit {
        state.withLock { hs_i2c_close($0.fd) }
    }

    public func transfer(address: UInt8, _ messages: [I2CMessage]) throws(HardwareError) -> [[UInt8]] {
        guard !messages.isEmpty else { return [] }
        guard address < 0x80 else {
            throw HardwareError(.invalidRequest, "0x\(String(address, radix: 16)) is not a 7-bit I2C address")
        }
        guard messages.count <= Int(HS_I2C_MAX_MESSAGES) else {
            throw HardwareError(
                .invalidRequest, "\(messages.count) messages in one I2C transaction; the kernel takes at most 42")
        }
        for message in messages {
            let length: Int
            switch message {
            case .write(let bytes): length = bytes.count
            case .read(let count): length = count
            }
            guard length > 0, length <= Int(UInt16.max) else {
                throw HardwareError(.invalidRequest, "an I2C message of \(length) bytes (1 to 65535)")
            }
        }
        let target = "\(path) at 0x\(String(address, radix: 16))"
        if messages.count == 1 {
            return [try single(address: address, messages[0], target: target)]
        }
        // One contiguous buffer for every message, so the C side sees stable pointers.
        let lengths = messages.map { message in
            switch message {
            case .write(let bytes): bytes.count
            case .read(let count): count
            }
        }
        var buffer = [UInt8](repeating: 0, count: lengths.reduce(0, +))
        var offset = 0
        for (message, length) in zip(messages, lengths) {
            if case .write(let bytes) = message { buffer.replaceSubrange(offset..<offset + length, with: bytes) }
            offset += length
        }
        let result: Int32 = buffer.withUnsafeMutableBufferPointer { storage in
            var descriptors: [hs_i2c_message] = []
            var position = 0
            for (message, length) in zip(messages, lengths) {
                let isRead: UInt8
                if case .read = message { isRead = 1 } else { isRead = 0 }
                descriptors.append(
                    hs_i2c_message(
                        address: UInt16(address), read: isRead, buffer: storage.baseAddress.map { $0 + position },
                        length: UInt16(length)))
                position += length
            }
            return state.withLock { hs_i2c_transfer($0.fd, descriptors, UInt32(descriptors.count)) }
        }
        guard result == 0 else { throw DeviceErrorMapping.i2c(errno: -result, path: target, operation: "transfer") }
        var reads: [[UInt8]] = []
        offset = 0
        for (message, length) in zip(messages, lengths) {
            if case .read = message { reads.append(Array(buffer[offset..<offset + length])) }
            offset += length
        }
        return reads
    }

    /// Holds an flock on the node around `body`, so that `hotspotd board probe` or `key show`
    /// cannot interleave with the agent's session (or the other way round). Without the lock
    /// (a file system that refuses it) `body` runs anyway.
    public func exclusively<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let fd = state.withLock { $0.fd }
        let locked = hs_i2c_lock(fd, 1) == 0
        defer { if locked { _ = hs_i2c_lock(fd, 0) } }
        return try body()
    }

    /// One message as a plain write or read to the target selected with I2C_SLAVE.
    private func single(address: UInt8, _ message: I2CMessage, target: String) throws(HardwareError) -> [UInt8] {
        let (result, bytes, operation): (Int32, [UInt8], String) = state.withLock { state in
            if state.selected != address {
                let selected = hs_i2c_select(state.fd, UInt16(address))
                guard selected == 0 else { return (selected, [], "select") }
                state.selected = address
            }
            switch message {
            case .write(let bytes):
                return (hs_i2c_write(state.fd, bytes, bytes.count), [], "transfer")
            case .read(let count):
                var buffer = [UInt8](repeating: 0, count: count)
                let result = hs_i2c_read(state.fd, &buffer, count)
                return (result, buffer, "transfer")
            }
        }
        guard result == 0 else { throw DeviceErrorMapping.i2c(errno: -result, path: target, operation: operation) }
        if case .read = message { return bytes }
        return []
    }
}
