import Clocks
import TOML
import TestSupport
import Testing

@testable import HAL

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.capturingLogs) struct BoardCatalogTests {
    @Test func loadsByNameAndByPath() throws {
        let catalog = BoardCatalog(directories: ["/nonexistent", boardDirectory])
        #expect(try catalog.load("mock").name == "mock")
        #expect(try catalog.load(boardDirectory + "/rak2287.toml").radio == .sx1302)
    }

    @Test func unknownNameListsTheKnownOnes() {
        let catalog = BoardCatalog(directories: [boardDirectory])
        do {
            _ = try catalog.load("no-such-board")
            Issue.record("loaded a missing profile")
        } catch {
            #expect(error.message.contains("no board profile named 'no-such-board'"))
            #expect(error.message.contains("mock"))
        }
    }

    @Test func aProfilesNameMustMatchItsFile() throws {
        let directory = "/tmp/hotspotd-catalog-\(getpid())"
        mkdir(directory, 0o755)
        defer {
            unlink(directory + "/other.toml")
            rmdir(directory)
        }
        let text = try readTextFile(boardDirectory + "/mock.toml")
        let file = fopen(directory + "/other.toml", "w")
        fputs(text, file)
        fclose(file)
        do {
            _ = try BoardCatalog.loadFile(directory + "/other.toml")
            Issue.record("loaded a profile whose name differs from its file")
        } catch {
            #expect(error.key == "name")
            #expect(error.message.contains("does not match the file name"))
        }
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: TOMLConfigError.self) { try BoardCatalog.loadFile("/nonexistent/board.toml") }
    }

    @Test func standardSearchOrderPutsTheEnvironmentFirst() {
        let catalog = BoardCatalog.standard(
            environment: ["HOTSPOTD_BOARD_DIR": "/a:/b"], executablePath: "/usr/bin/hotspotd")
        #expect(
            catalog.directories == [
                "/a", "/b", "/etc/hotspotd/boards", "/usr/bin/../share/hotspotd/boards", "/usr/share/hotspotd/boards",
                "Board",
            ])
    }
}

@Suite(.capturingLogs) struct GPIOChipLocatorTests {
    let pi4 = [
        GPIOChipInfo(path: "/dev/gpiochip0", label: "pinctrl-bcm2711", lineCount: 58),
        GPIOChipInfo(path: "/dev/gpiochip1", label: "raspberrypi-exp-gpio", lineCount: 8),
    ]
    let pi5 = [
        GPIOChipInfo(path: "/dev/gpiochip0", label: "pinctrl-rp1", lineCount: 54),
        GPIOChipInfo(path: "/dev/gpiochip10", label: "gpio-brcmstb@107d508500", lineCount: 32),
    ]

    @Test func findsTheHeaderChipByLabelOnEachModel() {
        #expect(GPIOChipLocator.locate(BoardProfile.raspberryPiHeaderChips, among: pi4)?.path == "/dev/gpiochip0")
        #expect(GPIOChipLocator.locate(BoardProfile.raspberryPiHeaderChips, among: pi5)?.label == "pinctrl-rp1")
    }

    @Test func pathsAndDeviceNamesWork() {
        #expect(GPIOChipLocator.locate(["/dev/gpiochip1"], among: pi4)?.label == "raspberrypi-exp-gpio")
        #expect(GPIOChipLocator.locate(["gpiochip10"], among: pi5)?.lineCount == 32)
    }

    @Test func firstCandidateWins() {
        #expect(
            GPIOChipLocator.locate(["raspberrypi-exp-gpio", "pinctrl-bcm2711"], among: pi4)?.path == "/dev/gpiochip1")
    }

    @Test func absentChipErrorListsWhatIsThere() {
        #expect(GPIOChipLocator.locate(["pinctrl-rp1"], among: pi4) == nil)
        let error = GPIOChipLocator.notFound(["pinctrl-rp1"], role: "reset", among: pi4)
        #expect(error.kind == .notFound)
        #expect(error.message.contains("/dev/gpiochip0 \"pinctrl-bcm2711\""))
        #expect(GPIOChipLocator.notFound(["x"], role: "reset", among: []).message.contains("no GPIO chips"))
    }
}
