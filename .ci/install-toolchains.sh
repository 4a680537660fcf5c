#!/usr/bin/env bash
# Install the Debian toolchains the test suite builds the C core with (each one
# missing makes its tests skip): clang, gcc-11, musl-gcc, the i686 cross gcc (32-bit x86),
# MinGW-w64 + Wine (Windows x86-64) and the aarch64 cross gcc + qemu-user (not
# gcc-multilib: Debian's conflicts with the cross compilers). Needs root (CI runs as root); does
# nothing when everything is already there.
set -euo pipefail
need=()
for tool in clang gcc-11 musl-gcc i686-linux-gnu-gcc x86_64-w64-mingw32-gcc wine aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ]] || need+=(libc6-dev-arm64-cross)
[[ -e /usr/i686-linux-gnu/lib/ld-linux.so.2 ]] || need+=(libc6-dev-i386-cross)
if [[ ${#need[@]} -eq 0 ]]; then
    echo "toolchains: all present"
    exit 0
fi
echo "toolchains: installing for ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq clang gcc-11 musl-tools gcc-i686-linux-gnu libc6-dev-i386-cross gcc-mingw-w64-x86-64 wine wine64 gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross qemu-user >/dev/null
