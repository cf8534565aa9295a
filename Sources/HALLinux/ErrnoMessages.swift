import Clocks
import HAL

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Turns a kernel error on a device node into a message that says what to do about it.
public enum DeviceErrorMapping {
    /// An error opening or using an spidev node.
    public static func spi(errno code: Int32, path: String, operation: String) -> HardwareError {
        switch code {
        case ENOENT:
            return HardwareError(
                .notFound,
                """
                \(path) does not exist: SPI is not enabled. Add `dtparam=spi=on` to /boot/firmware/config.txt \
                (or run `sudo raspi-config` → Interface Options → SPI) and reboot; check with `ls /dev/spidev*`.
                """, errno: code)
        case EACCES, EPERM:
            return permissionDenied(path, piGroup: "spi", errno: code)
        case EBUSY:
            return HardwareError(
                .busy, "\(path) is busy: another program (lora_pkt_fwd, a second hotspotd?) holds it", errno: code)
        case ENOTTY:
            return HardwareError(
                .wrongDevice, "\(path) does not accept SPI requests (\(operation)): is it really an spidev node?",
                errno: code)
        case EINVAL where operation == "configure":
            return HardwareError(
                .invalidRequest, "the SPI controller behind \(path) refused the profile's mode, word size or speed",
                errno: code)
        case ENXIO, ENODEV:
            return HardwareError(
                .notFound, "\(path) has no device behind it: check the board's overlay in config.txt", errno: code)
        default:
            return HardwareError(.io, "\(operation) on \(path) failed: \(String(cString: strerror(code)))", errno: code)
        }
    }

    /// An error opening or using an i2c-dev node, after the kernel's I2C fault codes
    /// (Documentation/i2c/fault-codes.rst).
    public static func i2c(errno code: Int32, path: String, operation: String) -> HardwareError {
        switch code {
        case ENOENT where operation == "open":
            return HardwareError(
                .notFound,
                """
                \(path) does not exist: I2C is not enabled. Add `dtparam=i2c_arm=on` to /boot/firmware/config.txt \
                (or run `sudo raspi-config` → Interface Options → I2C), make sure the i2c-dev module loads \
                (`echo i2c-dev | sudo tee /etc/modules-load.d/i2c-dev.conf`) and reboot; check with `ls /dev/i2c-*`.
                """, errno: code)
        case EACCES, EPERM:
            return permissionDenied(path, piGroup: "i2c", errno: code)
        case ENXIO where operation == "open", ENODEV:
            return HardwareError(.notFound, "\(path) has no adapter behind it", errno: code)
        case EBUSY where operation == "select":
            return HardwareError(
                .busy,
                """
                \(path) is claimed by a kernel driver (an atmel-ecc or cryptoauthlib overlay in config.txt?): remove \
                the overlay so that hotspotd can speak to the chip itself
                """, errno: code)
        case ENXIO, EREMOTEIO:
            return HardwareError(
                .nack, "no device acknowledged on \(path) (\(operation)): it is absent, asleep, or busy", errno: code)
        case EAGAIN, EBUSY:
            return HardwareError(
                .busBusy, "the I2C bus of \(path) is busy: another master holds it or arbitration was lost",
                errno: code)
        case ETIMEDOUT:
            return HardwareError(.timeout, "\(operation) on \(path) timed out: a device holds the bus", errno: code)
        case ENOTTY:
            return HardwareError(
                .wrongDevice, "\(path) does not accept I2C requests (\(operation)): is it really an i2c-dev node?",
                errno: code)
        case EOPNOTSUPP:
            return HardwareError(
                .invalidRequest, "the I2C adapter behind \(path) cannot do that transaction (\(operation))",
                errno: code)
        default:
            return HardwareError(.io, "\(operation) on \(path) failed: \(String(cString: strerror(code)))", errno: code)
        }
    }

    /// What to do when the service may not open a device node: the package's udev rule, the
    /// `hotspotd` group (Raspberry Pi OS grants `piGroup` too).
    static func permissionDenied(_ path: String, piGroup: String, errno code: Int32) -> HardwareError {
        HardwareError(
            .permissionDenied,
            """
            permission denied on \(path): install udev/99-hotspotd.rules into /etc/udev/rules.d/ \
            (then `sudo udevadm control --reload && sudo udevadm trigger`) and add the service user to the \
            `hotspotd` group (Raspberry Pi OS also grants the `\(piGroup)` group), or run as that user.
            """, errno: code)
    }

    /// An error opening a GPIO chip or requesting one of its lines.
    public static func gpio(errno code: Int32, path: String, line: UInt32?, role: String) -> HardwareError {
        let what = line.map { "\(path) line \($0) (\(role))" } ?? path
        switch code {
        case ENOENT:
            return HardwareError(.notFound, "\(path) does not exist: this system has no such GPIO chip", errno: code)
        case EACCES, EPERM:
            return permissionDenied(path, piGroup: "gpio", errno: code)
        case EBUSY:
            return HardwareError(
                .busy,
                """
                \(what) is held by another program: `gpioinfo` shows who; stop it (a packet forwarder's \
                reset script, another radio daemon) or pick another line in the board profile.
                """, errno: code)
        case EINVAL:
            return HardwareError(
                .invalidRequest,
                "\(what): the chip refused the request (no such line offset, or a setting the chip cannot do)",
                errno: code)
        default:
            return HardwareError(.io, "\(what): \(String(cString: strerror(code)))", errno: code)
        }
    }
}
