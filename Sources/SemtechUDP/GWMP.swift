import Clocks
import LoRaPHY
import Radio
import Wire

/// Semtech's packet forwarder protocol (GWMP), versions 1 and 2 (PROTOCOL.TXT of
/// Lora-net/packet_forwarder; v1.6 additions from sx1302_hal's PROTOCOL.md).
///
/// Every datagram starts with the protocol version, a two-byte token and an identifier; those
/// sent by a forwarder then carry its 8-byte gateway EUI, most significant byte first.
public enum GWMP {
    public enum Identifier: UInt8, Sendable {
        case pushData = 0x00
        case pushAck = 0x01
        case pullData = 0x02
        case pullResp = 0x03
        case pullAck = 0x04
        case txAck = 0x05
    }

    /// The two-byte token, kept as the bytes the forwarder sent, to be echoed unchanged.
    public struct Token: Hashable, Sendable {
        public var high: UInt8
        public var low: UInt8
        public init(_ high: UInt8, _ low: UInt8) {
            self.high = high
            self.low = low
        }
    }

    /// A datagram from a packet forwarder.
    public enum Upstream: Sendable, Equatable {
        case pushData(version: UInt8, token: Token, gateway: EUI64, json: [UInt8])
        case pullData(version: UInt8, token: Token, gateway: EUI64)
        case txAck(version: UInt8, token: Token, gateway: EUI64, json: [UInt8])

        /// The gateway EUI the datagram names.
        public var gateway: EUI64 {
            switch self {
            case .pushData(_, _, let gateway, _), .pullData(_, _, let gateway), .txAck(_, _, let gateway, _): gateway
            }
        }
    }

    /// Why a datagram was refused.
    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        case tooShort(Int)
        case unsupportedVersion(UInt8)
        case unexpectedIdentifier(UInt8)

        public var description: String {
            switch self {
            case .tooShort(let count): "datagram of \(count) bytes is shorter than its header"
            case .unsupportedVersion(let version): "protocol version \(version) (1 and 2 are supported)"
            case .unexpectedIdentifier(let identifier):
                "identifier 0x\(String(identifier, radix: 16)) is not one a forwarder sends"
            }
        }
    }

    public static func parse(_ datagram: [UInt8]) throws(ParseError) -> Upstream {
        guard datagram.count >= 4 else { throw .tooShort(datagram.count) }
        let version = datagram[0]
        guard version == 1 || version == 2 else { throw .unsupportedVersion(version) }
        let token = Token(datagram[1], datagram[2])
        guard let identifier = Identifier(rawValue: datagram[3]) else { throw .unexpectedIdentifier(datagram[3]) }
        switch identifier {
        case .pushData, .pullData, .txAck:
            guard datagram.count >= 12 else { throw .tooShort(datagram.count) }
        default:
            throw .unexpectedIdentifier(datagram[3])
        }
        let gateway = EUI64(bytes: datagram[4..<12])!
        let body = Array(datagram[12...])
        switch identifier {
        case .pushData: return .pushData(version: version, token: token, gateway: gateway, json: body)
        case .pullData: return .pullData(version: version, token: token, gateway: gateway)
        default:
            guard version == 2 else { throw .unexpectedIdentifier(datagram[3]) }  // TX_ACK came with v2
            return .txAck(version: version, token: token, gateway: gateway, json: body)
        }
    }

    /// PUSH_ACK or PULL_ACK: four bytes, the token echoed.
    public static func acknowledgement(_ identifier: Identifier, version: UInt8, token: Token) -> [UInt8] {
        [version, token.high, token.low, identifier.rawValue]
    }

    /// PULL_RESP carrying a `txpk`. Version 1 has no token there (the bytes are unused, zero).
    public static func pullResponse(version: UInt8, token: Token, txpk: JSONValue) -> [UInt8] {
        let header: [UInt8] =
            version == 1
            ? [1, 0, 0, Identifier.pullResp.rawValue] : [version, token.high, token.low, Identifier.pullResp.rawValue]
        return header + Array(JSON.serialize(.object([("txpk", txpk)])).utf8)
    }
}

/// A received packet from a PUSH_DATA's `rxpk` array, before it becomes a `RadioFrame`.
public enum ReceivedPacket {
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case missing(String)
        case invalid(String)
        /// FSK or LR-FHSS: valid, but not something hotspotd handles.
        case unsupportedModulation(String)

        public var description: String {
            switch self {
            case .missing(let field): "rxpk has no \(field)"
            case .invalid(let field): "rxpk has an invalid \(field)"
            case .unsupportedModulation(let modulation): "rxpk modulation \(modulation) is not handled"
            }
        }
    }

    /// Reads one `rxpk` object. With a v2 JSON forwarder's `rsig` array, the strongest antenna's
    /// RSSI and SNR are used.
    public static func frame(from rxpk: JSONValue, gateway: EUI64) throws(Problem) -> RadioFrame {
        guard case .object = rxpk else { throw .invalid("element (not an object)") }
        let modulation = rxpk["modu"]?.string ?? "LORA"
        guard modulation == "LORA" else { throw .unsupportedModulation(modulation) }
        guard let datr = rxpk["datr"] else { throw .missing("datr") }
        guard let rateText = datr.string else { throw .invalid("datr") }
        guard let dataRate = LoRaDataRate(rateText) else {
            if !rateText.hasPrefix("SF") { throw .unsupportedModulation("LR-FHSS \(rateText)") }
            throw .invalid("datr '\(rateText)'")
        }
        guard let freq = rxpk["freq"] else { throw .missing("freq") }
        guard let mhz = freq.number, mhz > 0, mhz < 4_000,
            let frequencyHz = UInt32(exactly: (mhz * 1_000_000).rounded())
        else {
            throw .invalid("freq")
        }
        guard let tmst = rxpk["tmst"] else { throw .missing("tmst") }
        guard let timestamp = tmst.integer(in: 0...Int64(UInt32.max)) else { throw .invalid("tmst") }
        guard let data = rxpk["data"] else { throw .missing("data") }
        guard let text = data.string, let payload = Base64.decode(text) else { throw .invalid("data (not base64)") }
        // `size` is not checked here: the bytes received are `data`. Some forwarders write the
        // Base64 text's length there; `PushDataContents` counts the disagreement.
        guard payload.count <= 255 else { throw .invalid("data (longer than 255 bytes)") }
        let crc: CRCStatus
        switch rxpk["stat"]?.integer(in: -1...1) {
        case .some(1): crc = .ok
        case .some(-1): crc = .bad
        case .some(0): crc = .absent
        default:
            if rxpk["stat"] == nil { throw .missing("stat") }
            throw .invalid("stat")
        }
        var codingRate: CodingRate?
        if let codr = rxpk["codr"] {
            guard let text = codr.string else { throw .invalid("codr") }
            codingRate = CodingRate(text)
            if codingRate == nil && text != "OFF" { throw .invalid("codr '\(text)'") }
        }

        var rssi = rxpk["rssi"]?.number
        var snr = rxpk["lsnr"]?.number
        var channel = rxpk["chan"]?.integer(in: 0...255).map(Int.init)
        if let signals = rxpk["rsig"] {
            guard let antennas = signals.array else { throw .invalid("rsig") }
            let best = antennas.compactMap { antenna -> (rssi: Double, snr: Double?, chan: Int?)? in
                guard let value = antenna["rssic"]?.number ?? antenna["rssis"]?.number else { return nil }
                return (value, antenna["lsnr"]?.number, antenna["chan"]?.integer(in: 0...255).map(Int.init))
            }.max { $0.rssi < $1.rssi }
            if let best {
                rssi = best.rssi
                snr = best.snr ?? snr
                channel = best.chan ?? channel
            }
        }
        guard let rssi else { throw .missing("rssi") }
        guard rssi.isFinite, (-200...50).contains(rssi) else { throw .invalid("rssi") }
        if let value = snr, !(value.isFinite && (-50...50).contains(value)) { throw .invalid("lsnr") }

        var receivedAt: Int64?
        if let time = rxpk["time"] {
            guard let text = time.string, let nanoseconds = Timestamps.parseISO8601(text) else {
                throw .invalid("time")
            }
            receivedAt = nanoseconds
        }
        return RadioFrame(
            payload: payload,
            frequencyHz: frequencyHz,
            dataRate: dataRate,
            codingRate: codingRate,
            rssiDBm: rssi,
            snrDB: snr ?? 0,
            crc: crc,
            timestamp: UInt32(timestamp),
            receivedAt: receivedAt,
            gatewayEUI: gateway,
            channel: channel,
            rfChain: rxpk["rfch"]?.integer(in: 0...255).map(Int.init)
        )
    }
}

/// What one PUSH_DATA body carries: the frames of its `rxpk` array, its `stat` report, and
/// the packets it had to refuse, each with the reason.
public struct PushDataContents: Sendable {
    public var frames: [RadioFrame] = []
    public var status: ForwarderStatus?
    /// Packets whose fields were missing or invalid.
    public var malformed: [ReceivedPacket.Problem] = []
    /// Valid packets of a modulation hotspotd does not handle (FSK, LR-FHSS).
    public var unsupported: [ReceivedPacket.Problem] = []
    /// Frames taken whose `size` disagreed with the length of their `data`, and the first such
    /// pair (size, data length): frames are taken by their data.
    public var sizeDisagreements = 0
    public var firstSizeDisagreement: (size: String, dataLength: Int)?

    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case notJSON(JSONError)
        case notAnObject

        public var description: String {
            switch self {
            case .notJSON(let error): "PUSH_DATA: \(error)"
            case .notAnObject: "PUSH_DATA body is not a JSON object"
            }
        }
    }

    /// Reads the JSON body of a PUSH_DATA sent by `gateway`. A body that is not a JSON object is
    /// refused whole; a bad packet in it is counted and skipped, and the others are kept.
    public init(json: [UInt8], gateway: EUI64) throws(Refusal) {
        let body: JSONValue
        do {
            body = try JSON.parse(json)
        } catch {
            throw .notJSON(error)
        }
        guard case .object = body else { throw .notAnObject }
        if let rxpk = body["rxpk"] {
            for element in rxpk.array ?? [rxpk] {
                do {
                    let frame = try ReceivedPacket.frame(from: element, gateway: gateway)
                    if let size = element["size"], size.integer(in: 0...Int64(Int32.max)) != Int64(frame.payload.count)
                    {
                        sizeDisagreements += 1
                        if firstSizeDisagreement == nil {
                            firstSizeDisagreement = (JSON.serialize(size), frame.payload.count)
                        }
                    }
                    frames.append(frame)
                } catch .unsupportedModulation(let modulation) {
                    unsupported.append(.unsupportedModulation(modulation))
                } catch {
                    malformed.append(error)
                }
            }
        }
        status = body["stat"].map(ForwarderStatus.init)
    }
}

/// A forwarder's `stat` report.
public struct ForwarderStatus: Sendable, Equatable {
    public var time: String?
    public var latitude: Double?
    public var longitude: Double?
    public var altitude: Double?
    public var received: Int?
    public var receivedOK: Int?
    public var forwarded: Int?
    public var acknowledgedPercent: Double?
    public var downlinksReceived: Int?
    public var transmitted: Int?
    public var temperature: Double?

    public init(_ stat: JSONValue) {
        // Kept only at a time stamp's length: the rest of a 60 KB string would be held for good.
        time = stat["time"]?.string.flatMap { $0.utf8.count <= 64 ? $0 : nil }
        latitude = stat["lati"]?.number
        longitude = stat["long"]?.number
        altitude = stat["alti"]?.number
        received = stat["rxnb"]?.integer(in: 0...Int64(Int32.max)).map(Int.init)
        receivedOK = stat["rxok"]?.integer(in: 0...Int64(Int32.max)).map(Int.init)
        forwarded = stat["rxfw"]?.integer(in: 0...Int64(Int32.max)).map(Int.init)
        acknowledgedPercent = stat["ackr"]?.number
        downlinksReceived = stat["dwnb"]?.integer(in: 0...Int64(Int32.max)).map(Int.init)
        transmitted = stat["txnb"]?.integer(in: 0...Int64(Int32.max)).map(Int.init)
        temperature = stat["temp"]?.number
    }
}

/// The `txpk` for a transmission, and what a `txpk_ack` says about it.
public enum Downlink {
    public static func txpk(_ request: TransmitRequest) -> JSONValue {
        var members: [(String, JSONValue)] = []
        switch request.timing {
        case .immediately: members.append(("imme", .bool(true)))
        case .atTimestamp(let timestamp): members.append(("tmst", .number(Double(timestamp))))
        }
        members += [
            ("freq", .number(Double(request.frequencyHz) / 1_000_000)),
            ("rfch", .number(0)),
            ("powe", .number(Double(request.powerDBm))),
            ("modu", .string("LORA")),
            ("datr", .string(request.dataRate.description)),
            ("codr", .string(request.codingRate.description)),
            ("ipol", .bool(request.invertedIQ)),
            ("prea", .number(Double(request.preambleLength))),
            ("size", .number(Double(request.payload.count))),
            ("data", .string(Base64.encode(request.payload))),
        ]
        if !request.crc { members.append(("ncrc", .bool(true))) }
        return .object(members)
    }

    /// The outcome a TX_ACK reports. An empty acknowledgement, or error NONE, means sent; a v1.6
    /// forwarder's `warn: TX_POWER` means sent at the power it names.
    public static func outcome(ofAcknowledgement json: [UInt8], requestedPowerDBm: Int) -> TransmitOutcome {
        // Some forwarders pad with a NUL; nothing but whitespace means no error.
        let trimmed = json.filter { $0 != 0 }
        guard trimmed.contains(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) else {
            return .sent(powerDBm: requestedPowerDBm)
        }
        guard let value = try? JSON.parse(trimmed), let ack = value["txpk_ack"] else {
            return .failed("unreadable TX_ACK")
        }
        if ack["warn"]?.string == "TX_POWER" {
            let power = ack["value"]?.number ?? ack["value"]?.string.flatMap(Double.init)
            return .sent(powerDBm: power.flatMap { $0.isFinite && abs($0) < 100 ? Int($0.rounded()) : nil })
        }
        switch ack["error"]?.string ?? "NONE" {
        case "NONE": return .sent(powerDBm: requestedPowerDBm)
        case "TOO_LATE": return .tooLate
        case "TOO_EARLY": return .tooEarly
        case "COLLISION_PACKET": return .collisionPacket
        case "COLLISION_BEACON": return .collisionBeacon
        case "TX_FREQ": return .frequencyNotAllowed
        case "TX_POWER": return .powerNotAllowed
        case "GPS_UNLOCKED": return .gpsUnlocked
        case let other: return .failed("forwarder reported \(other)")
        }
    }
}

/// Parsing the forwarder's time stamps.
public enum Timestamps {
    /// "2013-03-31T16:21:17.528002Z" (any number of fraction digits, or none) to nanoseconds
    /// since the Unix epoch; nil for anything else.
    public static func parseISO8601(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " "),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1970...2200).contains(year), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60,
            second < 61
        else { return nil }
        var index = 19
        var nanoseconds: Int64 = 0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                if digits < 9 { nanoseconds = nanoseconds * 10 + Int64(bytes[index] - UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if digits < 9 {
                for _ in digits..<9 { nanoseconds *= 10 }
            }
        }
        guard index == bytes.count - 1, bytes[index] == UInt8(ascii: "Z") else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return (((days * 24 + hour) * 60 + minute) * 60 + second) * Nanoseconds.perSecond + nanoseconds
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
