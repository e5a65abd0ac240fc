#!/usr/bin/env bash
# Installs the Debian packages the appliance needs at run time: Python, the tools of the boot
# units (mkfs, mdadm for a RAID 0 of instance-store disks) and the shared libraries the native
# extension links, as listed by the wheelhouse (runtime-packages.txt, made where the wheel was
# compiled). An sdist payload brings no list: install-appliance.sh works it out after compiling.
set -o errexit -o nounset -o pipefail

src=${APPLIANCE_SRC:?}
export DEBIAN_FRONTEND=noninteractive

packages=(python3 python3-venv ca-certificates e2fsprogs mdadm curl)
if [[ -f "$src/payload/runtime-packages.txt" ]]; then
  mapfile -t libraries < <(grep -v '^[[:space:]]*\(#\|$\)' "$src/payload/runtime-packages.txt")
  packages+=("${libraries[@]}")
fi

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
echo "install-packages: installed ${packages[*]}"
