import CCrypto
import CGPIO
import CMosquitto
import Clocks
import HAL
import Testing

@testable import HALLinux

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct LinuxSPIErrorTests {
    @Test func missingSpidevNamesTheConfigTxtStep() {
        do {
            _ = try LinuxSPIDevice(
                path: "/dev/spidev-hotspotd-missing", configuration: SPIConfiguration(speedHz: 1_000_000))
            Issue.record("opened a missing device")
        } catch {
            #expect(error.kind == .notFound)
            #expect(error.errno == ENOENT)
            #expect(error.message.contains("dtparam=spi=on"))
            #expect(error.message.contains("raspi-config"))
        }
    }

    @Test func aNodeThatIsNotSpidevIsRecognised() {
        do {
            _ = try LinuxSPIDevice(path: "/dev/null", configuration: SPIConfiguration(speedHz: 1_000_000))
            Issue.record("configured /dev/null as SPI")
        } catch {
            #expect(error.kind == .wrongDevice)
            #expect(error.message.contains("/dev/null"))
        }
    }

    @Test func permissionDeniedNamesTheUdevRuleAndGroup() {
        let error = DeviceErrorMapping.spi(errno: EACCES, path: "/dev/spidev0.0", operation: "open")
        #expect(error.kind == .permissionDenied)
        #expect(error.message.contains("99-hotspotd.rules"))
        #expect(error.message.contains("hotspotd"))
        #expect(error.message.contains("spi"))
    }

    @Test func busyAndUnknownErrorsAreNamed() {
        #expect(DeviceErrorMapping.spi(errno: EBUSY, path: "/dev/spidev0.0", operation: "open").kind == .busy)
        let refused = DeviceErrorMapping.spi(errno: EINVAL, path: "/dev/spidev0.0", operation: "configure")
        #expect(refused.kind == .invalidRequest)
        #expect(refused.message.contains("refused"))
        let other = DeviceErrorMapping.spi(errno: EIO, path: "/dev/spidev0.0", operation: "transfer")
        #expect(other.kind == .io)
        #expect(other.message.contains("transfer on /dev/spidev0.0"))
    }
}

@Suite struct LinuxGPIOErrorTests {
    @Test func buildUsesTheLibgpiodAPIThatPkgConfigReports() throws {
        let pipe = try #require(popen("pkg-config --modversion libgpiod", "r"))
        var buffer = [CChar](repeating: 0, count: 64)
        let line = fgets(&buffer, Int32(buffer.count), pipe)
        pclose(pipe)
        try #require(line != nil, "pkg-config knows libgpiod")
        let version = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let forced = getenv("HOTSPOTD_GPIOD_API").map { String(cString: $0) } ?? ""
        let expected = forced.isEmpty ? String(version.prefix(1)) : forced
        #expect(LinuxGPIOController.libgpiodAPI == expected, "pkg-config reports \(version)")
    }

    @Test func missingChipMapsToNotFound() {
        let chip = hs_gpio_chip_open("/dev/gpiochip-hotspotd-missing")
        let code = errno
        #expect(chip == nil)
        #expect(code == ENOENT)
        let error = DeviceErrorMapping.gpio(
            errno: code, path: "/dev/gpiochip-hotspotd-missing", line: nil, role: "reset")
        #expect(error.kind == .notFound)
    }

    @Test func aChipThatCannotBeOpenedExplainsWhyRatherThanSayingItIsAbsent() {
        var survey = LinuxGPIOController.Survey()
        survey.failures = [("/dev/gpiochip0", EACCES)]
        let spec = GPIOLineSpec(chips: ["pinctrl-bcm2711"], offset: 17)
        do {
            _ = try LinuxGPIOController.locate(spec, role: "reset", in: survey)
            Issue.record("located a chip it could not open")
        } catch {
            #expect(error.kind == .permissionDenied)
            #expect(error.message.contains("99-hotspotd.rules"))
        }
    }

    @Test func anOffsetBeyondTheChipIsRefused() throws {
        var survey = LinuxGPIOController.Survey()
        survey.chips = [GPIOChipInfo(path: "/dev/gpiochip0", label: "pinctrl-bcm2711", lineCount: 58)]
        #expect(
            try LinuxGPIOController.locate(
                GPIOLineSpec(chips: ["pinctrl-bcm2711"], offset: 17), role: "reset", in: survey
            ).path == "/dev/gpiochip0")
        #expect(throws: HardwareError.self) {
            try LinuxGPIOController.locate(
                GPIOLineSpec(chips: ["pinctrl-bcm2711"], offset: 60), role: "reset", in: survey)
        }
    }

    @Test func permissionAndBusyErrorsSayWhatToDo() {
        let denied = DeviceErrorMapping.gpio(errno: EACCES, path: "/dev/gpiochip0", line: 17, role: "reset")
        #expect(denied.kind == .permissionDenied)
        #expect(denied.message.contains("99-hotspotd.rules"))
        #expect(denied.message.contains("gpio"))
        let busy = DeviceErrorMapping.gpio(errno: EBUSY, path: "/dev/gpiochip0", line: 17, role: "reset")
        #expect(busy.kind == .busy)
        #expect(busy.message.contains("line 17 (reset)"))
        #expect(busy.message.contains("gpioinfo"))
    }

    @Test func requestingALineWithoutChipsExplainsWhy() {
        let spec = GPIOLineSpec(chips: ["pinctrl-hotspotd-test"], offset: 17, activeLow: true)
        do {
            _ = try LinuxGPIOController().requestLine(
                spec, role: "reset", consumer: "hotspotd", .output(initial: false))
            Issue.record("requested a line on a chip that does not exist")
        } catch {
            #expect(error.kind == .notFound)
            #expect(error.message.contains("pinctrl-hotspotd-test"))
        }
    }
}

/// The other C libraries' module maps import and link.
@Suite struct SystemLibraryTests {
    @Test func libmosquittoIsVersion2() {
        var major: Int32 = 0
        var minor: Int32 = 0
        var revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        #expect(major == 2)
    }

    @Test func libcryptoHashesTheFIPSVector() {
        // FIPS 180-2 appendix B.1: SHA-256("abc").
        var digest = [UInt8](repeating: 0, count: 32)
        let input: [UInt8] = Array("abc".utf8)
        _ = SHA256(input, input.count, &digest)
        let hex = digest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            .joined()
        #expect(hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
