import ArgumentParser
import Coverage
import Cryptography
import LoRaPHY
import LoRaWAN
import Radio
import Wire

struct FrameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frame",
        abstract: "Decode LoRaWAN frames.",
        subcommands: [Decode.self]
    )

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Print every field of a LoRaWAN PHYPayload, check its MIC and decrypt its payload when keys are given.",
            discussion:
                "The frame is hex or Base64, as packet forwarders and network servers log it. Keys are 32 hex digits."
        )

        @Argument(help: "The PHYPayload, in hex or Base64.")
        var frame: String

        @Option(
            name: .customLong("nwk-s-key"),
            help: "The network session key: checks a data frame's MIC, decrypts FPort 0.")
        var nwkSKey: String?

        @Option(
            name: .customLong("app-s-key"), help: "The application session key: decrypts FRMPayload on other ports.")
        var appSKey: String?

        @Option(name: .customLong("app-key"), help: "The AppKey: checks a join request's MIC, opens a join accept.")
        var appKey: String?

        @Option(
            name: .customLong("fcnt"),
            help: "The full 32-bit frame counter, when it has passed 65535 (default: the 16 bits on air).")
        var fullFrameCounter: UInt32?

        @Option(help: "The region it was heard in (EU868, AS923-2, CN470 …): its payload limit and answer windows.")
        var region: String?

        @Option(help: "The data rate it went at: an index of --region (5) or a name (SF7BW125).")
        var dr: String?

        @Option(help: "The frequency it was heard on, in MHz (868.1) or Hz: where RX1 answers.")
        var freq: Double?

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            guard let bytes = Self.bytes(of: frame) else {
                throw ValidationError("'\(frame)' is neither hex nor Base64")
            }
            let nwkSKey = try key(self.nwkSKey, "--nwk-s-key")
            let appSKey = try key(self.appSKey, "--app-s-key")
            let appKey = try key(self.appKey, "--app-key")
            let decoded: PHYPayload
            do {
                decoded = try PHYPayload.decode(bytes)
            } catch {
                throw ValidationError("not a LoRaWAN frame: \(error)")
            }
            var fields = try describe(decoded, nwkSKey: nwkSKey, appSKey: appSKey, appKey: appKey)
            if let region {
                let plan = try regionNamed(region)
                fields += try describe(bytes, as: decoded, in: plan)
            } else if dr != nil || freq != nil {
                throw ValidationError("--dr and --freq need --region")
            }
            if json {
                print(JSON.serialize(.object(fields.map { ($0.key, $0.json) })))
            } else {
                let width = fields.map(\.label.count).max() ?? 0
                for field in fields {
                    print(field.label.padding(to: width) + "  " + field.text)
                }
            }
        }

        struct Field {
            var key: String
            var label: String
            var text: String
            var json: JSONValue
        }

        func describe(_ frame: PHYPayload, nwkSKey: [UInt8]?, appSKey: [UInt8]?, appKey: [UInt8]?) throws -> [Field] {
            var fields = [
                Field(
                    key: "mtype", label: "MType", text: frame.mType.description,
                    json: .string(frame.mType.description)),
                Field(
                    key: "major", label: "Major", text: "\(frame.major) (LoRaWAN R1)",
                    json: .number(Double(frame.major))),
            ]
            switch frame.message {
            case .data(let data):
                let counter = fullFrameCounter ?? UInt32(data.fCnt)
                let control = data.fCtrl
                fields += [
                    Field(
                        key: "dev_addr", label: "DevAddr", text: data.devAddr.description,
                        json: .string(data.devAddr.description)),
                    Field(
                        key: "fctrl", label: "FCtrl",
                        text:
                            """
                            ADR=\(control.adr) \(frame.mType.isUplink ? "ADRACKReq" : "RFU")=\(control.adrAckReq) \
                            ACK=\(control.ack) \(frame.mType.isUplink ? "ClassB" : "FPending")=\(control.fPending) \
                            FOptsLen=\(control.fOptsLength)
                            """,
                        // The bits' names in LoRaWAN 1.0.x: ADRACKReq and ClassB uplink, RFU and FPending downlink.
                        json: .object([
                            ("adr", .bool(control.adr)),
                            (frame.mType.isUplink ? "adr_ack_req" : "rfu", .bool(control.adrAckReq)),
                            ("ack", .bool(control.ack)),
                            (frame.mType.isUplink ? "class_b" : "f_pending", .bool(control.fPending)),
                            ("f_opts_len", .number(Double(control.fOptsLength))),
                        ])),
                    Field(
                        key: "fcnt", label: "FCnt",
                        text: "\(data.fCnt)" + (counter != UInt32(data.fCnt) ? " (full counter \(counter))" : ""),
                        json: .number(Double(counter))),
                ]
                let commands = MACCommand.parse(data.fOpts, uplink: frame.mType.isUplink)
                fields.append(
                    Field(
                        key: "fopts", label: "FOpts",
                        text: commands.isEmpty ? "(none)" : commands.map(\.description).joined(separator: ", "),
                        json: .array(commands.map { .string($0.description) })))
                if let port = data.fPort {
                    fields.append(Field(key: "fport", label: "FPort", text: "\(port)", json: .number(Double(port))))
                    fields.append(
                        Field(
                            key: "frm_payload", label: "FRMPayload", text: Hex.encode(data.frmPayload) + " (encrypted)",
                            json: .string(Hex.encode(data.frmPayload))))
                }
                fields.append(
                    micField(
                        frame.mic, valid: try nwkSKey.map { key in try frame.hasValidMIC(nwkSKey: key, fCnt: counter) },
                        missing: "--nwk-s-key"))
                if let plain = try frame.decryptedPayload(nwkSKey: nwkSKey, appSKey: appSKey, fCnt: counter) {
                    var text = Hex.encode(plain)
                    if let printable = String(validating: plain, as: UTF8.self),
                        printable.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }), !plain.isEmpty
                    {
                        text += " \"\(printable)\""
                    }
                    if data.fPort == 0 {
                        text +=
                            " = "
                            + MACCommand.parse(plain, uplink: frame.mType.isUplink).map(\.description).joined(
                                separator: ", ")
                    }
                    fields.append(Field(key: "payload", label: "Payload", text: text, json: .string(Hex.encode(plain))))
                }
            case .joinRequest(let request):
                fields += [
                    Field(
                        key: "join_eui", label: "JoinEUI", text: request.joinEUI.description,
                        json: .string(request.joinEUI.description)),
                    Field(
                        key: "dev_eui", label: "DevEUI", text: request.devEUI.description,
                        json: .string(request.devEUI.description)),
                    Field(
                        key: "dev_nonce", label: "DevNonce", text: "\(request.devNonce)",
                        json: .number(Double(request.devNonce))),
                    micField(
                        frame.mic, valid: try appKey.map { try frame.hasValidJoinMIC(appKey: $0) }, missing: "--app-key"
                    ),
                ]
            case .joinAccept(let encrypted):
                if let appKey {
                    let (accept, valid) = try LoRaWANCrypto.decryptJoinAccept(frame, appKey: appKey)
                    fields += [
                        Field(
                            key: "join_nonce", label: "JoinNonce", text: "\(accept.joinNonce)",
                            json: .number(Double(accept.joinNonce))),
                        Field(
                            key: "net_id", label: "NetID", text: hex6(accept.netID), json: .string(hex6(accept.netID))),
                        Field(
                            key: "dev_addr", label: "DevAddr", text: accept.devAddr.description,
                            json: .string(accept.devAddr.description)),
                        Field(
                            key: "dl_settings", label: "DLSettings",
                            text:
                                """
                                RX1DROffset=\((accept.dlSettings >> 4) & 0x07) \
                                RX2DataRate=\(accept.dlSettings & 0x0F)
                                """,
                            json: .number(Double(accept.dlSettings))),
                        Field(
                            key: "rx_delay", label: "RxDelay", text: "\(accept.rxDelay)",
                            json: .number(Double(accept.rxDelay))),
                        Field(
                            key: "cf_list", label: "CFList",
                            text: accept.cfList.isEmpty ? "(none)" : Hex.encode(accept.cfList),
                            json: .string(Hex.encode(accept.cfList))),
                        Field(
                            key: "mic_valid", label: "MIC", text: valid ? "valid with AppKey" : "INVALID with AppKey",
                            json: .bool(valid)),
                    ]
                } else {
                    fields.append(
                        Field(
                            key: "encrypted", label: "Encrypted",
                            text: Hex.encode(encrypted) + " (give --app-key to open)",
                            json: .string(Hex.encode(encrypted))))
                }
            case .rejoinRequest(let body):
                fields.append(
                    Field(key: "body", label: "Body", text: Hex.encode(body), json: .string(Hex.encode(body))))
                fields.append(micField(frame.mic, valid: nil, missing: "a LoRaWAN 1.1 network key"))
            case .proprietary(let body):
                let beaconNote = ": the size of a proof-of-coverage beacon"
                let beaconSized = frame.bytes.count == 52 && frame.bytes[0] == 0xE0
                fields.append(
                    Field(
                        key: "body", label: "Body",
                        text:
                            "\(Hex.encode(body)) (\(body.count) bytes\(beaconSized ? beaconNote : ""))",
                        json: .string(Hex.encode(body))))
            }
            return fields
        }

        /// What `region`'s rules say of the frame: its data rate and payload limit, its time on
        /// air, where and how RX1 and RX2 answer an uplink, where a beacon of its data goes.
        func describe(_ bytes: [UInt8], as frame: PHYPayload, in region: Region) throws -> [Field] {
            let name = region.name.displayName
            var fields = [Field(key: "region", label: "Region", text: name, json: .string(name))]
            var index: Int?
            if let dr {
                if let number = Int(dr) {
                    guard region.dataRates[number] != nil else {
                        throw ValidationError("DR\(number) is not a data rate of \(name)")
                    }
                    index = number
                } else if let rate = LoRaDataRate(dr) {
                    guard let found = region.index(of: rate, uplink: frame.mType.isUplink) else {
                        throw ValidationError("\(rate) is not a data rate of \(name)")
                    }
                    index = found
                } else {
                    throw ValidationError("--dr '\(dr)' is neither an index nor a data rate such as SF7BW125")
                }
            }
            let hz = try freq.map { given -> UInt32 in
                // MHz below 10 000 (868.1), Hz from there (868100000).
                let hz = given < 10_000 ? (given * 1_000_000).rounded() : given.rounded()
                guard hz.isFinite, hz > 0, hz <= Double(UInt32.max) else {
                    throw ValidationError("--freq \(given) is not a frequency (868.1 in MHz, or 868100000 in Hz)")
                }
                return UInt32(hz)
            }
            if let hz, !region.band.contains(hz) {
                fields.append(
                    Field(
                        key: "frequency", label: "Frequency", text: "\(megahertz(hz)) MHz: OUTSIDE \(name)",
                        json: .number(Double(hz))))
            }
            if let index {
                let rate = region.loraDataRate(index)
                var text = "DR\(index)" + (rate.map { " = \($0)" } ?? "")
                var members: [(String, JSONValue)] = [("index", .number(Double(index)))]
                if let rate { members.append(("name", .string(rate.description))) }
                if let limit = region.maximumPHYPayload(dataRate: index) {
                    let fits = bytes.count <= limit
                    text += ", \(bytes.count) of at most \(limit) bytes" + (fits ? "" : ": TOO LONG")
                    members += [("maximum_size", .number(Double(limit))), ("fits", .bool(fits))]
                }
                if let rate {
                    let airtime = LoRaAirtime(modulation: rate.modulation(), payloadLength: bytes.count)
                    text += ", \(formatMilliseconds(airtime.nanoseconds)) ms on air"
                    members.append(("airtime_ms", .number(Double(airtime.nanoseconds) / 1e6)))
                }
                fields.append(Field(key: "data_rate", label: "DataRate", text: text, json: .object(members)))
                if frame.mType.isUplink, frame.mType != .proprietary,
                    let rx1 = region.rx1DataRate(uplink: index, offset: 0)
                {
                    let where_ = hz.flatMap { region.rx1Frequency(uplinkHz: $0) }.map { "\(megahertz($0)) MHz " } ?? ""
                    let rate = region.loraDataRate(rx1).map { " (\($0))" } ?? ""
                    fields.append(
                        Field(
                            key: "rx1", label: "RX1", text: "\(where_)DR\(rx1)\(rate) with RX1DROffset 0",
                            json: .object([
                                (
                                    "frequency",
                                    hz.flatMap { region.rx1Frequency(uplinkHz: $0) }.map { .number(Double($0)) }
                                        ?? .null
                                ),
                                ("data_rate", .number(Double(rx1))),
                            ])))
                }
            }
            if frame.mType.isUplink, frame.mType != .proprietary {
                let rate = region.loraDataRate(region.rx2DataRate).map { " (\($0))" } ?? ""
                fields.append(
                    Field(
                        key: "rx2", label: "RX2",
                        text: "\(megahertz(region.rx2FrequencyHz)) MHz DR\(region.rx2DataRate)\(rate)",
                        json: .object([
                            ("frequency", .number(Double(region.rx2FrequencyHz))),
                            ("data_rate", .number(Double(region.rx2DataRate))),
                        ])))
            }
            if let data = Beacon.data(ofFrame: bytes),
                let (frequency, channel, rate) = Beacon.transmission(ofData: data, region: region)
            {
                fields.append(
                    Field(
                        key: "beacon", label: "Beacon",
                        text:
                            "a beacon of this data goes on \(megahertz(frequency)) MHz (channel \(channel)) at \(rate)",
                        json: .object([
                            ("frequency", .number(Double(frequency))), ("channel", .number(Double(channel))),
                            ("data_rate", .string(rate.description)),
                        ])))
            }
            return fields
        }

        func megahertz(_ hz: UInt32) -> String {
            var fraction = String(hz % 1_000_000)
            fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            return "\(hz / 1_000_000)" + (fraction.isEmpty ? "" : "." + fraction)
        }

        func micField(_ mic: [UInt8], valid: Bool?, missing: String) -> Field {
            let verdict = valid.map { $0 ? "valid" : "INVALID" } ?? "not checked: give \(missing)"
            var members: [(String, JSONValue)] = [("mic", .string(Hex.encode(mic)))]
            if let valid { members.append(("valid", .bool(valid))) }
            return Field(key: "mic", label: "MIC", text: "\(Hex.encode(mic)) (\(verdict))", json: .object(members))
        }

        func hex6(_ value: UInt32) -> String {
            Hex.encode(value, digits: max(6, String(value, radix: 16).count), uppercase: true)
        }

        func key(_ text: String?, _ option: String) throws -> [UInt8]? {
            guard let text else { return nil }
            guard let key = Hex.decode(text), key.count == 16 else {
                throw ValidationError("\(option) must be 32 hex digits (a 128-bit key)")
            }
            return key
        }

        static func bytes(of text: String) -> [UInt8]? {
            let trimmed = text.filter { !$0.isWhitespace }
            if trimmed.count % 2 == 0, trimmed.allSatisfy(\.isHexDigit), let bytes = Hex.decode(trimmed) {
                return bytes
            }
            return Base64.decode(trimmed)
        }
    }
}
