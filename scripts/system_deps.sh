#!/usr/bin/env bash
# Install the Debian packages the test suite needs, if missing:
#   libiio0       the libiio 0.24 C library under pylibiio 0.25 / pyadi-iio (the Pluto tests run the real
#                 driver stack over TCP against a test iiod)
#   postgresql    the server binaries (initdb, pg_ctl) for the digital twin's throwaway test server
#   python3-venv  where the interpreter has no venv/ensurepip
#   libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0   what PyQt6 needs, even offscreen
# As root it installs them with apt-get; otherwise it prints the command to run and fails.
set -euo pipefail
need=()
libs=$(ldconfig -p 2>/dev/null || true)          # read once: grep -q on a pipe would SIGPIPE ldconfig
have() { grep -q "$1" <<<"$libs"; }
have 'libiio\.so\.0' || need+=(libiio0)
# Qt 6 (PyQt6) for the display tests, run offscreen: the libraries its platform plugins link against
have 'libEGL\.so\.1' || need+=(libegl1)
have 'libGL\.so\.1' || need+=(libgl1)
have 'libxkbcommon\.so\.0' || need+=(libxkbcommon0)
have 'libfontconfig\.so\.1' || need+=(libfontconfig1)
have 'libdbus-1\.so\.3' || need+=(libdbus-1-3)
have 'libglib-2\.0\.so\.0' || need+=(libglib2.0-0)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || need+=(postgresql)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
else
    echo "sdr_isac needs these system packages: ${need[*]}" >&2
    echo "install them with: sudo apt-get install ${need[*]}   (Debian/Ubuntu), then run make again" >&2
    exit 1
fi
