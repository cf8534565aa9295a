import Clocks

/// Why the hardware layer could not do what was asked, in words a hotspot owner can act on.
public struct HardwareError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// A device node that does not exist (SPI not enabled, wrong chip).
        case notFound
        /// The process may not open a device node (udev rule or group missing).
        case permissionDenied
        /// Another program holds the line or device.
        case busy
        /// The node exists but is not the kind of device expected.
        case wrongDevice
        /// A request the hardware or driver refused (bad offset, bad speed …).
        case invalidRequest
        /// The device did not answer in time.
        case timeout
        /// No I2C target acknowledged its address (absent, asleep, or busy executing).
        case nack
        /// Another master holds the I2C bus, or arbitration was lost.
        case busBusy
        /// Anything else the kernel reported.
        case io
    }

    public var kind: Kind
    public var message: String
    /// The errno the kernel returned, when there was one.
    public var errno: Int32?

    public init(_ kind: Kind, _ message: String, errno: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.errno = errno
    }

    public var description: String { message }
}

extension HardwareError {
    /// Runs `body`, reporting a thread that could not start as an I/O error.
    public static func io<T>(_ body: () throws(ThreadError) -> T) throws(HardwareError) -> T {
        do {
            return try body()
        } catch {
            throw HardwareError(.io, error.message, errno: error.errno)
        }
    }
}
