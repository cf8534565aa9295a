import Credits
import Testing

@Suite struct UplinkFilterTests {
    /// ChirpStack's forwarder's examples: `0000ff00/24` and `0000ff0000000000/24`.
    @Test func prefixesReadAsChirpStackWritesThem() throws {
        let devAddr = try BitPrefix(parsing: "0000ff00/24", width: 32)
        #expect(devAddr.matches(0x0000_FF00) && devAddr.matches(0x0000_FFFF) && !devAddr.matches(0x0001_FF00))
        let joinEUI = try BitPrefix(parsing: "0000ff0000000000/24", width: 64)
        #expect(joinEUI.matches(0x0000_FF12_3456_789A) && !joinEUI.matches(0x0000_FE00_0000_0000))
        #expect(try BitPrefix(parsing: "26000000/7", width: 32).matches(0x27FF_FFFF))
        #expect(try BitPrefix(parsing: "00000000/0", width: 32).matches(0xFFFF_FFFF))
        #expect(devAddr.description == "0000ff00/24")
        for bad in ["0000ff00", "0000ff0/24", "0000ff00/33", "zzzzzzzz/8", "0000ff00/-1", "0000ff00/24/1"] {
            #expect(throws: FilterError.self, "\(bad)") { try BitPrefix(parsing: bad, width: 32) }
        }
    }

    @Test func denyWinsAndAnAllowListLeavesOutTheRest() throws {
        let filters = UplinkFilters(
            devAddrPrefixes: [try BitPrefix(parsing: "26000000/8", width: 32)],
            denyDevAddrPrefixes: [try BitPrefix(parsing: "26011001/32", width: 32)])
        #expect(filters.admits(devAddr: 0x2601_1000))
        #expect(!filters.admits(devAddr: 0x2601_1001), "denied")
        #expect(!filters.admits(devAddr: 0x2701_1000), "not in the allow list")
        #expect(filters.admits(joinEUI: 0x70B3_D57E_D000_0000), "no JoinEUI filter")
        #expect(UplinkFilters.none.admits(devAddr: 0) && UplinkFilters.none.admits(joinEUI: .max))
    }
}
