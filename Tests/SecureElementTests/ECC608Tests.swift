import Clocks
import Cryptography
import HAL
import HALMock
import TestSupport
import Testing
import Wire

@testable import SecureElement

private func hex(_ text: String) -> [UInt8] { Hex.decode(text.replacingOccurrences(of: " ", with: ""))! }

/// A simulated chip on a virtual bus at 0x60, with a driver that polls quickly.
private func bench(
    revision: [UInt8] = [0x00, 0x00, 0x60, 0x02], locked: Bool = true, executionScale: Double = 0.05,
    watchdogMilliseconds: UInt64 = 1300
) -> (ECC608, SimulatedECC608, VirtualI2CBus) {
    var timing = SimulatedECC608.Timing()
    timing.executionScale = executionScale
    timing.watchdogNanoseconds = watchdogMilliseconds * 1_000_000
    let key = P256PrivateKey.compact(seed: Array("ECC608Tests".utf8))
    let simulated = SimulatedECC608(key: key, revision: revision, locked: locked, timing: timing)
    let bus = VirtualI2CBus(path: "/dev/i2c-1")
    bus.attach(simulated, at: 0x60)
    return (ECC608(bus: bus, address: 0x60), simulated, bus)
}

@Suite(.capturingLogs) struct ECC608PacketTests {
    /// CRC-16 examples: the wake response Microchip documents (`04 11 33 43`), the Info
    /// packet in helium/ecc608-linux-rs's unit test (`03 07 30 00 00 00 03 5D`), and the
    /// algorithm's check value over "123456789" (0xBCDD).
    @Test func crcMatchesPublishedExamples() {
        #expect(ECC608CRC.bytes([0x04, 0x11]) == [0x33, 0x43])
        #expect([0x03] + ECC608Command.revision.packet == hex("03 07 30 00 00 00 03 5D"))
        #expect(ECC608CRC.value(Array("123456789".utf8)) == 0xBCDD)
        #expect(ECC608CRC.bytes([0x04, 0x00]) == [0x03, 0x40])
        #expect(ECC608CRC.bytes([0x04, 0xFF]) == [0x01, 0x42])
    }

    @Test func commandPacketsAreLaidOutAsTheDatasheetSays() {
        #expect(ECC608Command.random.packet == hex("07 1B 00 00 00 24 CD"))
        #expect(ECC608Command.readConfiguration(block: 0).packet == hex("07 02 80 00 00 09 AD"))
        #expect(ECC608Command.readConfiguration(block: 2).packet.prefix(5) == hex("07 02 80 10 00")[...])
        #expect(ECC608Command.publicKey(slot: 0).packet == hex("07 40 00 00 00 00 05"))
        #expect(ECC608Command.signExternal(slot: 0).packet == hex("07 41 80 00 00 28 05"))
        let nonce = ECC608Command.passThroughNonce([UInt8](repeating: 0xAB, count: 32)).packet
        #expect(nonce.count == 39 && nonce[0] == 39 && nonce[1] == 0x16 && nonce[2] == 0x03)
        #expect(ECC608CRC.bytes(nonce.dropLast(2)) == Array(nonce.suffix(2)))
    }

    @Test func keyURIsReadAsHeliumWritesThem() throws {
        let uri = try ECCKeyURI(parsing: "ecc://i2c-1:96?slot=0")
        #expect(uri == ECCKeyURI(bus: "/dev/i2c-1", address: 0x60, slot: 0))
        #expect(uri.description == "ecc://i2c-1:96?slot=0")
        #expect(try ECCKeyURI(parsing: "ecc://i2c-0") == ECCKeyURI(bus: "/dev/i2c-0"))
        #expect(
            try ECCKeyURI(parsing: "ecc://i2c-1:88?slot=2&network=mainnet")
                == ECCKeyURI(bus: "/dev/i2c-1", address: 88, slot: 2))
        for bad in [
            "ecc://i2c-1:960?slot=0", "ecc://i2c-1:96?slot=16", "ecc://:96", "ecc://i2c-1?network=testnet",
            "ecc://i2c-1?color=red", "ecc:/i2c-1", "ecc://../etc:96",
        ] {
            #expect(throws: CryptoError.self, "\(bad)") { try ECCKeyURI(parsing: bad) }
        }
    }
}

@Suite(.capturingLogs) struct ECC608DriverTests {
    @Test func readsTheChipItWasGiven() throws {
        let (chip, simulated, _) = bench()
        #expect(try chip.revision() == [0x00, 0x00, 0x60, 0x02])
        let first = try chip.random()
        let second = try chip.random()
        #expect(first.count == 32 && first != second)
        let configuration = try chip.configuration()
        #expect(configuration.bytes == simulated.configuration)
        #expect(configuration.configurationLocked && configuration.dataLocked)
        #expect(configuration.holdsP256PrivateKey(0) && !configuration.holdsP256PrivateKey(1))
        #expect(configuration.serialNumber.count == 9 && configuration.serialNumber.last == 0xEE)
        #expect(try chip.publicKey(slot: 0) == simulated.key.publicKey)
        #expect(simulated.state == .asleep, "every session ends with the chip asleep")
    }

    @Test func signaturesVerifyAgainstTheSlotsPublicKey() throws {
        let (chip, simulated, _) = bench()
        let signer = try ECC608Signer(chip: chip, slot: 0)
        #expect(signer.heliumKey == .eccCompact(simulated.key.publicKey))
        for message in [[], Array("hello world".utf8), [UInt8](repeating: 7, count: 500)] {
            let signature = try signer.sign(message)
            #expect(signature.first == 0x30, "DER, as helium-crypto encodes ecc_compact signatures")
            #expect(signer.heliumKey.isValidSignature(signature, for: message))
            #expect(!signer.heliumKey.isValidSignature(signature, for: message + [1]))
        }
        // Only commands that read or sign: never Write (0x12), Lock (0x17), PrivWrite (0x46) or
        // GenKey in private-key mode.
        #expect(Set(simulated.commandsReceived).isSubset(of: [0x30, 0x1B, 0x02, 0x40, 0x16, 0x41]))
    }

    @Test func aGarbledResponseIsAskedForAgain() throws {
        let (chip, simulated, _) = bench()
        simulated.injectFaults { $0.corruptResponses = 2 }
        #expect(try chip.revision() == [0x00, 0x00, 0x60, 0x02])
        simulated.injectFaults { $0.refuseCommandsAsGarbled = 2 }
        #expect(try chip.publicKey(slot: 0) == simulated.key.publicKey)
    }

    @Test func aChipThatFallsAsleepMidCommandIsWokenAndAskedAgain() throws {
        let (chip, simulated, _) = bench()
        let signer = try ECC608Signer(chip: chip, slot: 0)
        simulated.injectFaults { $0.sleepDuringCommands = 1 }
        let signature = try signer.sign(Array("beacon".utf8))
        #expect(signer.heliumKey.isValidSignature(signature, for: Array("beacon".utf8)))
        simulated.injectFaults { $0.eccFaults = 2 }
        #expect(signer.heliumKey.isValidSignature(try signer.sign([1, 2, 3]), for: [1, 2, 3]))
    }

    @Test func faultsThatDoNotClearEndInAClearError() throws {
        let (chip, simulated, _) = bench()
        simulated.injectFaults { $0.corruptResponses = 100 }
        #expect {
            try chip.revision()
        } throws: { error in
            (error as? ECC608Error)?.kind == .communication
        }
        simulated.injectFaults { $0.corruptResponses = 0 }
        // A slot the chip's configuration does not let sign: an execution error, not retried.
        let before = simulated.commandsReceived.count
        #expect {
            try chip.sign(digest: [UInt8](repeating: 1, count: 32), slot: 3)
        } throws: { error in
            (error as? ECC608Error)?.kind == .status(.executionError)
        }
        #expect(simulated.commandsReceived.count == before + 2, "Nonce and Sign once: an execution error is final")
    }

    @Test func aChipThatNeverAnswersIsNamedByBusAndAddress() throws {
        let (chip, simulated, _) = bench()
        simulated.injectFaults { $0.unresponsive = true }
        #expect {
            try chip.revision()
        } throws: { error in
            guard let error = error as? ECC608Error else { return false }
            return error.kind == .notResponding && error.message.contains("/dev/i2c-1 at 0x60")
        }
        let empty = ECC608(bus: VirtualI2CBus(path: "/dev/i2c-0"), address: 0x60)
        #expect(throws: ECC608Error.self) { try empty.revision() }
    }

    @Test func anotherChipIsRefusedByItsRevision() throws {
        let (chip, _, _) = bench(revision: [0x00, 0x00, 0x50, 0x00])
        #expect(try chip.revision() == [0x00, 0x00, 0x50, 0x00])
        #expect {
            try ECC608Signer(chip: chip, slot: 0)
        } throws: { error in
            (error as? ECC608Error)?.kind == .wrongRevision([0x00, 0x00, 0x50, 0x00])
        }
        let (newer, _, _) = bench(revision: [0x00, 0x00, 0x60, 0x03])
        _ = try ECC608Signer(chip: newer, slot: 0)
    }

    @Test func anUnprovisionedChipIsReportedAndNeverProvisioned() throws {
        let (chip, simulated, _) = bench(locked: false)
        let report = try SecureElementReport.probe(chip, slot: 0)
        #expect(!report.configurationLocked && report.publicKey == nil)
        #expect(report.problem?.contains("not provisioned") == true)
        #expect(!simulated.commandsReceived.contains(0x17) && !simulated.commandsReceived.contains(0x12))
        let (provisioned, _, _) = bench()
        let good = try SecureElementReport.probe(provisioned, slot: 0)
        #expect(good.problem == nil && good.publicKey != nil && good.slotHoldsP256Key)
    }

    /// The simulated chip keeps the datasheet's rules the driver depends on.
    @Test func theSimulatedChipSleepsUntilWokenAndAfterItsWatchdog() throws {
        let (_, simulated, bus) = bench(watchdogMilliseconds: 50)
        let device = I2CDevice(bus: bus, address: 0x60)
        #expect(throws: HardwareError.self) { try device.read(4) }
        _ = try? bus.transfer(address: 0, [.write([0])])
        sleepMilliseconds(2)
        #expect(try device.read(4) == [0x04, 0x11, 0x33, 0x43])
        // A command with a bad CRC is answered with status 0xFF.
        try device.write([0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00])
        #expect(try device.read(4) == [0x04, 0xFF, 0x01, 0x42])
        sleepMilliseconds(60)
        #expect(simulated.state == .asleep)
        #expect(throws: HardwareError.self) { try device.read(1) }
    }
}
