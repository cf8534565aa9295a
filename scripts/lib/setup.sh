# Shared by the scripts: find the Swift toolchain and install the Debian packages hotspotd
# builds and tests with, when they are missing. Source it; it changes nothing that is present.

# The Swift toolchain: on PATH, or where the swift.org tarball is usually unpacked.
if ! command -v swift >/dev/null 2>&1; then
    for candidate in /opt/swift/usr/bin /usr/share/swift/usr/bin "$HOME/swift/usr/bin"; do
        if [ -x "$candidate/swift" ]; then
            export PATH="$candidate:$PATH"
            break
        fi
    done
fi
if ! command -v swift >/dev/null 2>&1; then
    echo "hotspotd needs Swift 6.0 or later: unpack the toolchain from swift.org and put its usr/bin on PATH." >&2
    exit 1
fi

# C libraries hotspotd links, and what its tests run against.
HOTSPOTD_BUILD_PACKAGES="pkg-config libmosquitto-dev libgpiod-dev libssl-dev libsqlite3-dev libsystemd-dev"
HOTSPOTD_TEST_PACKAGES="mosquitto mosquitto-clients systemd python3 python3-pip python3-protobuf python3-cryptography protobuf-compiler openssl"

ensure_packages() {
    local missing=()
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
