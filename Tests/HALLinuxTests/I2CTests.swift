import CI2C
import HAL
import Testing

@testable import HALLinux

#if canImport(Glibc)
    import Glibc
#endif

/// The i2c-dev backend at its edges: the kernel structures as this build lays them out, the
/// messages filled for I2C_RDWR, and the kernel's I2C fault codes in words an owner can act on.
@Suite struct LinuxI2CTests {
    @Test func kernelStructuresAreLaidOutAsLinuxI2CHSays() {
        let layout = hs_i2c_struct_layout()
        // struct i2c_msg { __u16 addr; __u16 flags; __u16 len; __u8 *buf; }
        #expect(layout.addr == 0 && layout.flags == 2 && layout.len == 4)
        #expect(layout.buf == MemoryLayout<UnsafeRawPointer>.size)
        #expect(layout.msg_size == 2 * MemoryLayout<UnsafeRawPointer>.size)
        // struct i2c_rdwr_ioctl_data { struct i2c_msg *msgs; __u32 nmsgs; }
        #expect(layout.rdwr_msgs == 0 && layout.rdwr_nmsgs == MemoryLayout<UnsafeRawPointer>.size)
        #expect(layout.rdwr_request == 0x0707 && layout.slave_request == 0x0703 && layout.timeout_request == 0x0702)
        #expect(layout.read_flag == 0x0001)
    }

    @Test func messagesAreFilledForOneCombinedTransaction() {
        var write: [UInt8] = [0x03, 0x07]
        var read = [UInt8](repeating: 0, count: 4)
        let layout = hs_i2c_struct_layout()
        var out = [UInt8](repeating: 0xAA, count: 2 * layout.msg_size)
        let result = write.withUnsafeMutableBufferPointer { w in
            read.withUnsafeMutableBufferPointer { r in
                let messages = [
                    hs_i2c_message(address: 0x60, read: 0, buffer: w.baseAddress, length: 2),
                    hs_i2c_message(address: 0x60, read: 1, buffer: r.baseAddress, length: 4),
                ]
                return out.withUnsafeMutableBytes { hs_i2c_fill_messages(messages, 2, $0.baseAddress, $0.count) }
            }
        }
        #expect(result == 0)
        func u16(_ offset: Int) -> UInt16 { UInt16(out[offset]) | UInt16(out[offset + 1]) << 8 }
        #expect(u16(0) == 0x60 && u16(2) == 0 && u16(4) == 2)
        #expect(u16(layout.msg_size) == 0x60 && u16(layout.msg_size + 2) == 1 && u16(layout.msg_size + 4) == 4)
        #expect(hs_i2c_fill_messages(nil, 0, nil, 0) == -EINVAL)
        #expect(hs_i2c_fill_messages(nil, 43, nil, 0) == -EINVAL)
    }

    @Test func faultCodesAreNamed() {
        let nack = DeviceErrorMapping.i2c(errno: EREMOTEIO, path: "/dev/i2c-1 at 0x60", operation: "transfer")
        #expect(nack.kind == .nack && nack.message.contains("/dev/i2c-1 at 0x60"))
        #expect(DeviceErrorMapping.i2c(errno: ENXIO, path: "/dev/i2c-1", operation: "transfer").kind == .nack)
        #expect(DeviceErrorMapping.i2c(errno: EAGAIN, path: "/dev/i2c-1", operation: "transfer").kind == .busBusy)
        #expect(DeviceErrorMapping.i2c(errno: ETIMEDOUT, path: "/dev/i2c-1", operation: "transfer").kind == .timeout)
        #expect(DeviceErrorMapping.i2c(errno: EACCES, path: "/dev/i2c-1", operation: "open").kind == .permissionDenied)
    }

    @Test func aMissingBusNamesTheConfigTxtStep() {
        do {
            _ = try LinuxI2CBus(path: "/dev/i2c-hotspotd-missing")
            Issue.record("opened a missing bus")
        } catch {
            #expect(error.kind == .notFound)
            #expect(error.message.contains("dtparam=i2c_arm=on") && error.message.contains("i2c-dev"))
        }
    }

    @Test func aNodeThatIsNotAnI2CAdapterIsRecognised() {
        do {
            _ = try LinuxI2CBus(path: "/dev/null")
            Issue.record("opened /dev/null as an I2C bus")
        } catch {
            #expect(error.kind == .wrongDevice)
        }
    }
}

@Suite struct LinuxI2CLockTests {
    /// The lock that keeps `board probe` out of the agent's chip sessions is a real flock:
    /// another open file of the same node waits for it.
    @Test func theBusLockIsAnFlockOthersWaitFor() throws {
        let path = "/tmp/hotspotd-i2c-lock-\(getpid())"
        let first = open(path, O_RDWR | O_CREAT, 0o600)
        let second = open(path, O_RDWR)
        defer {
            close(first)
            close(second)
            unlink(path)
        }
        #expect(first >= 0 && second >= 0)
        #expect(hs_i2c_lock(first, 1) == 0)
        #expect(flock(second, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
        #expect(hs_i2c_lock(first, 0) == 0)
        #expect(flock(second, LOCK_EX | LOCK_NB) == 0)
    }
}
