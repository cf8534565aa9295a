import ArgumentParser
import Cryptography
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
                Print the key's Helium address, public key, the gateway ID derived from it, and the X25519 key \
                that pair commands seal NwkSKeys to.
                """
        )

        @Option(name: .long, help: "The key file.")
        var keyFile: String = defaultKeyFile

        @Flag(help: "Print JSON (keys: address, public_key, gateway_id, sealing_key).")
        var json = false

        func run() throws {
            let key: Ed25519PrivateKey
            do {
                key = try KeyFile.read(keyFile)
            } catch {
                printError(error.message)
                throw ExitCode(1)
            }
            let identity = GatewayIdentity(key: key)
            if json {
                print(
                    JSON.serialize(
                        .object([
                            ("address", .string(identity.address)),
                            ("public_key", .string(Hex.encode(key.publicKey.bytes))),
                            ("gateway_id", .string(identity.gatewayID)),
                            ("sealing_key", .string(Hex.encode(key.sealingKey.publicKey))),
                        ])))
            } else {
                print("address     \(identity.address)")
                print("public key  \(Hex.encode(key.publicKey.bytes))")
                print("gateway id  \(identity.gatewayID)")
                print("sealing key \(Hex.encode(key.sealingKey.publicKey))")
            }
        }
    }
}
