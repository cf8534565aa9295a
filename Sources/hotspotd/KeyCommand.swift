import ArgumentParser
import Cryptography
import HAL
import SecureElement
import TOML
import Wire

let defaultKeyFile = "/var/lib/hotspotd/gateway.key"

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Create and show the gateway's Ed25519 key (Helium's keypair file format).",
        subcommands: [Generate.self, Show.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new key file, mode 0600. An existing file is never overwritten.")

        @Option(name: .long, help: "The key file.")
        var keyFile: String = defaultKeyFile

        func run() throws {
            let key = Ed25519PrivateKey.generate()
            do {
                try KeyFile.create(keyFile, key: key)
            } catch {
                printError(error.message)
                throw ExitCode(1)
            }
            print(GatewayIdentity(key: key).address)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                """
                Print the key's type, Helium address and public key, the gateway ID derived from it, and the X25519 \
                key that pair commands seal NwkSKeys to.
                """,
            discussion:
                """
                The key is --key or --key-file when given, otherwise the agent's: the configuration's gateway.key, \
                else the secure element its board's profile names, else /var/lib/hotspotd/gateway.key. A secure \
                element (ecc://i2c-1:96?slot=0) is read through the bus of --board's profile, by default the \
                configuration's gateway.board; its sealing key is the file sealing.key in --data-dir, made by the \
                agent's first start.
                """
        )

        @Option(name: .long, help: "The key file.")
        var keyFile: String?

        @Option(name: .long, help: "A key file's path or a secure element's ecc:// URI; wins over --key-file.")
        var key: String?

        @Option(name: .long, help: "The board whose I2C bus holds the secure element. Default: gateway.board.")
        var board: String?

        @Option(name: .long, help: "The configuration file whose gateway.board is used when --board is not given.")
        var config: String = "/etc/hotspotd/hotspotd.toml"

        @Option(name: .long, help: "A directory of board profiles, searched before the standard ones.")
        var boardDir: String?

        @Option(name: .long, help: "The data directory, where a secure element's sealing key is kept.")
        var dataDir: String = "/var/lib/hotspotd"

        @Flag(help: "Print JSON (keys: key_type, address, public_key, gateway_id, sealing_key).")
        var json = false

        func run() throws {
            let publicKey: HeliumPublicKey
            var sealing: [UInt8]?
            var source = key ?? keyFile ?? configuredKey(config) ?? profileKey() ?? defaultKeyFile
            if ECCKeyURI.isURI(source) {
                do {
                    let uri = try ECCKeyURI(parsing: source)
                    let profile = try catalog(boardDir).load(try board ?? configuredBoard(config))
                    let hardware = try openBoard(profile)
                    let chip = ECC608(bus: try hardware.openI2C(uri.bus), address: uri.address)
                    publicKey = try ECC608Signer(chip: chip, slot: uri.slot).heliumKey
                    sealing = (try? SealingKeyFile.read(dataDir + "/sealing.key"))?.publicKey
                    source = uri.description
                } catch let error as CryptoError {
                    printError(error.message)
                    throw ExitCode(1)
                } catch let error as TOMLConfigError {
                    printError(error.description)
                    throw ExitCode(1)
                } catch let error as HardwareError {
                    printError(error.message)
                    throw ExitCode(1)
                } catch let error as ECC608Error {
                    printError(error.message)
                    throw ExitCode(1)
                }
            } else {
                do {
                    let key = try KeyFile.read(source)
                    publicKey = key.heliumKey
                    sealing = key.sealingKey.publicKey
                } catch {
                    printError(error.message)
                    throw ExitCode(1)
                }
            }
            let gatewayID = GatewayIdentity.derivedGatewayID(of: publicKey)
            printIdentity(publicKey, gatewayID: gatewayID, sealing: sealing, source: source)
        }

        /// The secure element the board's profile names, when a board is known and has one.
        func profileKey() -> String? {
            guard let name = board ?? (try? configuredBoard(config)),
                let profile = try? catalog(boardDir).load(name)
            else { return nil }
            return profile.secureElement?.uri
        }

        func printIdentity(_ publicKey: HeliumPublicKey, gatewayID: String, sealing: [UInt8]?, source: String) {
            if json {
                print(
                    JSON.serialize(
                        .object([
                            ("key_type", .string(publicKey.keyType.rawValue)),
                            ("address", .string(publicKey.address)),
                            ("public_key", .string(Hex.encode(publicKey.keyBytes))),
                            ("gateway_id", .string(gatewayID)),
                            ("sealing_key", sealing.map { .string(Hex.encode($0)) } ?? .null),
                        ])))
            } else {
                print("key type    \(publicKey.keyType.rawValue) (\(source))")
                print("address     \(publicKey.address)")
                print("public key  \(Hex.encode(publicKey.keyBytes))")
                print("gateway id  \(gatewayID)")
                let sealingText = sealing.map { Hex.encode($0) } ?? "none yet: the agent's first start makes it"
                print("sealing key \(sealingText)")
            }
        }
    }
}
