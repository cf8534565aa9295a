#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// An IPv4 or IPv6 socket address.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    fileprivate var storage: [UInt8]

    fileprivate init(_ pointer: UnsafeRawPointer, length: Int) {
        storage = Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// Parses "127.0.0.1:1700", "0.0.0.0:1700", "[::1]:1700", "localhost:1700".
    public init?(_ text: String) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = UInt16(portText) else { return nil }
        if host == "localhost" { host = "127.0.0.1" }
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, String(host), &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            self = withUnsafeBytes(of: &v4) { SocketAddress($0.baseAddress!, length: MemoryLayout<sockaddr_in>.size) }
            return
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, String(host), &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            self = withUnsafeBytes(of: &v6) { SocketAddress($0.baseAddress!, length: MemoryLayout<sockaddr_in6>.size) }
            return
        }
        return nil
    }

    /// AF_INET or AF_INET6.
    public var family: Int32 {
        storage.withUnsafeBytes { Int32($0.load(as: sockaddr.self).sa_family) }
    }

    public var port: UInt16 {
        storage.withUnsafeBytes { raw in
            family == AF_INET
                ? UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
                : UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
        }
    }

    /// The address without its port: "127.0.0.1", "::1". An IPv4 sender seen by a dual-stack
    /// socket (::ffff:192.0.2.7) is written as the IPv4 address it is.
    public var host: String {
        let written = writtenHost
        if written.hasPrefix("::ffff:"), written.contains(".") { return String(written.dropFirst(7)) }
        return written
    }

    private var writtenHost: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        return storage.withUnsafeBytes { raw -> String in
            if family == AF_INET {
                var address = raw.load(as: sockaddr_in.self).sin_addr
                inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count))
            } else {
                var address = raw.load(as: sockaddr_in6.self).sin6_addr
                inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
            }
            return string(buffer)
        }
    }

    /// Whether only this host can reach the address: 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        storage.withUnsafeBytes { raw in
            if family == AF_INET {
                return UInt32(bigEndian: raw.load(as: sockaddr_in.self).sin_addr.s_addr) >> 24 == 127
            }
            let bytes = withUnsafeBytes(of: raw.load(as: sockaddr_in6.self).sin6_addr) { Array($0) }
            return bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }

    public var description: String {
        family == AF_INET ? "\(host):\(port)" : "[\(host)]:\(port)"
    }

    private func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address as the socket calls take it.
    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        storage.withUnsafeBytes { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }
}

/// A bound UDP socket. `receive` waits at most a given time, so a thread that reads it can
/// notice it is asked to stop.
public final class UDPSocket: Sendable {
    private let descriptor: Int32
    public let localAddress: SocketAddress

    public init(binding address: SocketAddress) throws(SocketError) {
        let descriptor = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError(operation: "socket", code: errno, address: address) }
        // No SO_REUSEADDR: for UDP it would let a second server bind the same port and share
        // its datagrams.
        var size: Int32 = 1 << 20  // room for bursts from several forwarders
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let result = address.withSockaddr { bind(descriptor, $0, $1) }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            throw SocketError(operation: "bind", code: code, address: address)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        localAddress = withUnsafeBytes(of: &storage) { SocketAddress($0.baseAddress!, length: Int(length)) }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// The next datagram and its sender, or nil when none came within `timeoutMilliseconds`.
    public func receive(timeoutMilliseconds: Int32) -> (bytes: [UInt8], from: SocketAddress)? {
        var descriptorSet = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptorSet, 1, timeoutMilliseconds) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = buffer.withUnsafeMutableBytes { bytes in
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, &length)
                }
            }
        }
        guard count >= 0 else { return nil }
        let sender = withUnsafeBytes(of: &storage) { SocketAddress($0.baseAddress!, length: Int(length)) }
        return (Array(buffer[0..<count]), sender)
    }

    /// Sends one datagram; true when the kernel took it.
    @discardableResult
    public func send(_ bytes: [UInt8], to address: SocketAddress) -> Bool {
        let sent = bytes.withUnsafeBytes { raw in
            address.withSockaddr { sendto(descriptor, raw.baseAddress, raw.count, 0, $0, $1) }
        }
        return sent == bytes.count
    }
}

public struct SocketError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var address: SocketAddress

    public var description: String {
        if code == EADDRINUSE {
            return
                """
                \(address) is already in use: another program (a second hotspotd, or a gateway bridge) listens \
                there; change semtech_udp.bind
                """
        }
        if code == EADDRNOTAVAIL {
            return "\(address) is not an address of this machine: change semtech_udp.bind"
        }
        return "\(operation) \(address): \(String(cString: strerror(code)))"
    }
}
