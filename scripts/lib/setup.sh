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
HOTSPOTD_TEST_PACKAGES="mosquitto mosquitto-clients systemd python3 python3-pip python3-venv python3-cryptography openssl"

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
    # apt's own chatter (debconf, dpkg's progress) is kept in a file and shown only on failure.
    local log
    log=$(mktemp)
    if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "Could not install ${missing[*]} (see apt's output above)." >&2
        return 1
    fi
    rm -f "$log"
}

# Python decoders that somebody else wrote, for the tests to check hotspotd's messages with:
# ChirpStack's published gw.proto bindings (PyPI chirpstack-api), and a pure-Python ECDSA
# (PyPI ecdsa) that checks the secure element's signatures without OpenSSL. In a virtual
# environment of the repository's own (.build-python, ignored by git), made or completed when
# it lacks them.
HOTSPOTD_TEST_PYTHON_PACKAGES="chirpstack-api==4.20.0 ecdsa==0.19.1 prometheus-client==0.26.0"
HOTSPOTD_TEST_PYTHON_CHECK="import chirpstack_api.gw.gw_pb2, ecdsa, prometheus_client.parser"
ensure_test_python() {
    local venv=.build-python
    if "$venv/bin/python3" -c "$HOTSPOTD_TEST_PYTHON_CHECK" >/dev/null 2>&1; then
        return 0
    fi
    echo "Installing $HOTSPOTD_TEST_PYTHON_PACKAGES into $venv" >&2
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    local log
    log=$(mktemp)
    if ! { "$venv/bin/pip" install --disable-pip-version-check wheel &&
        "$venv/bin/pip" install --disable-pip-version-check $HOTSPOTD_TEST_PYTHON_PACKAGES; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "Could not install $HOTSPOTD_TEST_PYTHON_PACKAGES from PyPI (see pip's output above)." >&2
        return 1
    fi
    rm -f "$log"
    "$venv/bin/python3" -c "$HOTSPOTD_TEST_PYTHON_CHECK"
}
