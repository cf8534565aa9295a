import CSPI
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel's struct spi_ioc_transfer must be laid out identically on 32-bit and 64-bit ARM:
/// 32 bytes, buffers as __u64 at offsets 0 and 8 (include/uapi/linux/spi/spidev.h).
@Suite struct SPIStructLayoutTests {
    @Test func transferStructHasTheKernelABI() {
        let layout = hs_spi_ioc_transfer_layout()
        #expect(layout.size == 32)
        #expect(layout.tx_buf == 0)
        #expect(layout.rx_buf == 8)
        #expect(layout.tx_buf_width == 8)
        #expect(layout.len == 16)
        #expect(layout.speed_hz == 20)
        #expect(layout.delay_usecs == 24)
        #expect(layout.bits_per_word == 26)
        #expect(layout.cs_change == 27)
        #expect(layout.tx_nbits == 28)
        #expect(layout.rx_nbits == 29)
    }

    /// SPI_IOC_MESSAGE(n) = _IOW('k', 0, char[32 n]): direction write (1 << 30), size << 16, 'k' << 8.
    @Test func messageRequestNumberEncodesTheSize() {
        #expect(hs_spi_ioc_message_request(1) == 0x4020_6B00)
        #expect(hs_spi_ioc_message_request(2) == 0x4040_6B00)
        #expect(hs_spi_ioc_message_request(8) == 0x4100_6B00)
    }

    @Test func segmentsAreCopiedIntoKernelStructsWithWidenedPointers() {
        var tx: [UInt8] = [0x42, 0x00]
        var rx: [UInt8] = [0, 0]
        var raw = [UInt8](repeating: 0xAA, count: 64)
        let result = tx.withUnsafeMutableBufferPointer { txBuffer in
            rx.withUnsafeMutableBufferPointer { rxBuffer in
                var segments = [
                    hs_spi_segment(
                        tx: UnsafePointer(txBuffer.baseAddress), rx: rxBuffer.baseAddress, length: 2,
                        speed_hz: 1_000_000, delay_usecs: 10, bits_per_word: 8, cs_change: 0),
                    hs_spi_segment(
                        tx: nil, rx: nil, length: 5, speed_hz: 0, delay_usecs: 0, bits_per_word: 0, cs_change: 1),
                ]
                let code = raw.withUnsafeMutableBytes { hs_spi_fill_transfers(&segments, 2, $0.baseAddress, $0.count) }
                let txAddress = UInt64(UInt(bitPattern: txBuffer.baseAddress))
                let rxAddress = UInt64(UInt(bitPattern: rxBuffer.baseAddress))
                return (code, txAddress, rxAddress)
            }
        }
        #expect(result.0 == 0)
        func u64(_ offset: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(raw[offset + $1]) << (8 * $1) } }
        func u32(_ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(raw[offset + $1]) << (8 * $1) } }
        #expect(u64(0) == result.1)
        #expect(u64(8) == result.2)
        #expect(u32(16) == 2)
        #expect(u32(20) == 1_000_000)
        #expect(raw[24] == 10 && raw[25] == 0)
        #expect(raw[26] == 8)
        #expect(raw[27] == 0)
        #expect(raw[30] == 0 && raw[31] == 0, "padding is zeroed")
        #expect(u64(32) == 0 && u64(40) == 0, "NULL buffers travel as 0")
        #expect(u32(48) == 5)
        #expect(raw[59] == 1)
    }

    @Test func segmentCountIsBounded() {
        var raw = [UInt8](repeating: 0, count: 32)
        var segment = hs_spi_segment(
            tx: nil, rx: nil, length: 1, speed_hz: 0, delay_usecs: 0, bits_per_word: 0, cs_change: 0)
        #expect(raw.withUnsafeMutableBytes { hs_spi_fill_transfers(&segment, 0, $0.baseAddress, $0.count) } == -EINVAL)
        #expect(hs_spi_transfer(-1, &segment, 512) == -EINVAL)
        #expect(
            raw.withUnsafeMutableBytes { hs_spi_fill_transfers(&segment, 2, $0.baseAddress, $0.count) } == -EINVAL,
            "output too small")
    }
}
