import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The second process of the concentrator path: a packet forwarder's uplink side. Sends the
/// workload's frames as GWMP v2 PUSH_DATA datagrams of `batch` rxpk each, keeps at most
/// `window` datagrams unacknowledged, and sends a datagram again when its PUSH_ACK is late.
struct GWMPSender {
    let port: Int
    let workload: Workload
    let batch: Int
    let window: Int
    static let gatewayEUI: [UInt8] = [0xAA, 0x55, 0x5A, 0x00, 0x00, 0x00, 0xBE, 0x01]

    func datagrams() -> [[UInt8]] {
        stride(from: 0, to: workload.frames.count, by: batch).enumerated().map { number, start in
            let frames = workload.frames[start..<min(start + batch, workload.frames.count)]
            let rxpk = frames.enumerated().map { offset, payload in
                Workload.rxpk(payload, timestamp: UInt32(truncatingIfNeeded: (start + offset) * 1000))
            }
            let body = #"{"rxpk":[\#(rxpk.joined(separator: ","))]}"#
            let token = UInt16(truncatingIfNeeded: number)
            return [2, UInt8(token >> 8), UInt8(token & 0xFF), 0x00] + Self.gatewayEUI + Array(body.utf8)
        }
    }

    /// Sends `datagrams` (from `datagrams()`), keeping at most `ahead` frames beyond those the
    /// agent has charged (`charged()`, polled), so that its frame buffer never overflows;
    /// returns how many datagrams had to be sent again.
    func run(_ datagrams: [[UInt8]], ahead: Int = 512, charged: () -> Int) throws -> Int {
        let fd = try connectedUDPSocket(port: port)
        defer { close(fd) }

        var next = 0
        var outstanding: [UInt16: (index: Int, sentAt: Double)] = [:]
        var resent = 0
        var buffer = [UInt8](repeating: 0, count: 64)
        var knownCharged = 0
        while next < datagrams.count || !outstanding.isEmpty {
            if next * batch - knownCharged >= ahead {
                knownCharged = charged()
                if next * batch - knownCharged >= ahead { usleep(1000) }
            }
            while next < datagrams.count && outstanding.count < window && next * batch - knownCharged < ahead {
                let datagram = datagrams[next]
                _ = datagram.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                outstanding[UInt16(datagram[1]) << 8 | UInt16(datagram[2])] = (next, now())
                next += 1
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, outstanding.isEmpty ? 0 : 50) > 0 {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count >= 4 && buffer[3] == 0x01 {
                    outstanding[UInt16(buffer[1]) << 8 | UInt16(buffer[2])] = nil
                }
            }
            let late = now() - 1
            for (token, entry) in outstanding where entry.sentAt < late {
                _ = datagrams[entry.index].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                outstanding[token] = (entry.index, now())
                resent += 1
            }
        }
        return resent
    }
}

/// A UDP socket connected to `port` on loopback: a packet forwarder's uplink side.
func connectedUDPSocket(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        let failure = BenchError("connect: \(String(cString: strerror(errno)))")
        close(fd)
        throw failure
    }
    return fd
}

/// A UDP port free on loopback right now.
func freeUDPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else { throw BenchError("no free UDP port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
