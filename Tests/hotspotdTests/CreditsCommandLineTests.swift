import Agent
import ChirpStack
import Clocks
import Credits
import Cryptography
import Foundation
import Messages
import Store
import TestSupport
import Testing
import Transport

@Suite(.capturingLogs, .serialized) struct CreditsCommandLineTests {
    let directory: String = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hotspotd-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }()

    @Test func keyGenerateAndShow() async throws {
        let keyFile = directory + "/gateway.key"
        let generated = try await runHotspotd(["key", "generate", "--key-file", keyFile])
        #expect(generated.status == 0, "\(generated.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: keyFile)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let shown = try await runHotspotd(["key", "show", "--key-file", keyFile, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: String]
        #expect(json?["address"] == generated.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(json?["public_key"]?.count == 64)
        #expect(json?["gateway_id"]?.count == 16)
        #expect(try await runHotspotd(["key", "generate", "--key-file", keyFile]).status == 1, "never overwritten")
        chmod(keyFile, 0o644)
        let refused = try await runHotspotd(["key", "show", "--key-file", keyFile])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("mode 0644"))
    }

    @Test func signedCommandsPairAndCreditThenDevicesAndCreditsListThem() async throws {
        let authorityFile = directory + "/authority.key"
        #expect(try await runHotspotd(["key", "generate", "--key-file", authorityFile]).status == 0)
        let authority = try KeyFile.read(authorityFile)
        let gateway = "0016c001ff10a235"
        let store = try Store.open(directory: directory + "/data")
        let topics = Topics(prefix: "eu868", gatewayID: gateway)
        // The gateway's key, and the sealing key `key show` prints for it.
        let gatewayFile = directory + "/gateway.key"
        #expect(try await runHotspotd(["key", "generate", "--key-file", gatewayFile]).status == 0)
        let shown = try await runHotspotd(["key", "show", "--key-file", gatewayFile, "--json"])
        let sealKey = try #require(
            (try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])?["sealing_key"]
                as? String)
        let processor = CommandProcessor(
            store: store,
            authority: CommandAuthority(
                authority: authority.publicKey, gatewayID: gateway, sealingKey: try KeyFile.read(gatewayFile).sealingKey
            ), topics: topics
        ) { Int64(Date().timeIntervalSince1970 * 1e9) }

        let unsealed = try await runHotspotd([
            "command", "sign", "--key", authorityFile, "--gateway", gateway, "pair", "--dev-addr", "26011BDA",
            "--nwk-s-key", "11111111111111111111111111111111", "--owner", "alice",
        ])
        #expect(
            unsealed.status != 0 && unsealed.stderr.contains("--seal-key"), "a NwkSKey is never signed in the clear")
        let pair = try await runHotspotd([
            "command", "sign", "--key", authorityFile, "--gateway", gateway, "pair", "--dev-addr", "26011BDA",
            "--dev-eui", "70B3D57ED0000001", "--nwk-s-key", "11111111111111111111111111111111", "--seal-key", sealKey,
            "--owner", "alice", "--base64",
        ])
        #expect(pair.status == 0, "\(pair.stderr)")
        let pairBytes = [UInt8](
            try #require(Data(base64Encoded: pair.stdout.trimmingCharacters(in: .whitespacesAndNewlines))))
        #expect(
            try await processor.process(pairBytes, topic: topics.pair).get()
                == .pair(
                    devAddr: 0x2601_1BDA, devEUI: 0x70B3_D57E_D000_0001, owner: "alice",
                    nwkSKey: [UInt8](repeating: 0x11, count: 16)))
        let credit = try await runHotspotd([
            "command", "sign", "--key", authorityFile, "--gateway", gateway, "credit", "--owner", "alice", "--amount",
            "250", "--base64",
        ])
        let creditBytes = [UInt8](
            try #require(Data(base64Encoded: credit.stdout.trimmingCharacters(in: .whitespacesAndNewlines))))
        _ = try await processor.process(creditBytes, topic: topics.credit).get()

        let devices = try await runHotspotd(["devices", "--data-dir", directory + "/data"])
        #expect(devices.status == 0, "\(devices.stderr)")
        #expect(devices.stdout.contains("26011BDA  70b3d57ed0000001  alice"))
        let credits = try await runHotspotd(["credits", "--data-dir", directory + "/data", "--json"])
        let accounts = try JSONSerialization.jsonObject(with: Data(credits.stdout.utf8)) as? [[String: Any]]
        #expect(accounts?.first?["owner"] as? String == "alice")
        #expect(accounts?.first?["balance"] as? Int == 250)
        #expect(
            try await runHotspotd(["devices", "--data-dir", directory + "/nowhere"]).stderr.contains("no store here"))
    }

    @Test func reportVerifyChecksAReceiptsSignature() async throws {
        let key = Ed25519PrivateKey.generate()
        let summary = ReceiptSummary(
            owner: "alice", periodStart: 1, periodEnd: 2, uplinks: 3, bytes: 60, credits: 3, firstSeq: 1, lastSeq: 3,
            previousChain: [UInt8](repeating: 0, count: 32), chain: [UInt8](repeating: 7, count: 32))
        let receipt = try ReceiptIssuer.receipt(summary, signer: key, gatewayID: "0016c001ff10a235")
        let file = directory + "/receipt.bin"
        try Data(try receipt.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: file))
        let verified = try await runHotspotd(["report", "verify", file])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.contains("valid, signed by \(Helium.address(of: key.publicKey))"))
        #expect(verified.stdout.contains("credits    3 DC"))

        var tampered = receipt
        tampered.credits = 1
        try Data(try tampered.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: file))
        let refused = try await runHotspotd(["report", "verify", file])
        #expect(refused.status == 1)
        #expect(refused.stdout.contains("INVALID"))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: file))
        #expect(try await runHotspotd(["report", "verify", file]).stderr.contains("not a usage receipt"))
    }
}
