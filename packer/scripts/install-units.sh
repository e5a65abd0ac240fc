#!/usr/bin/env bash
# Installs the systemd units and the baked configuration into the image, creates the service
# user and enables the boot sequence (disks -> autotune -> socket + service). Runs as root inside
# the image being built, after install-appliance.sh.
#
#   APPLIANCE_SRC  the repository's files as uploaded by Packer (default /tmp/appliance-src)
#   ROOT           the image's root (default /); another directory for tests
set -o errexit -o nounset -o pipefail

SRC=${APPLIANCE_SRC:-/tmp/appliance-src}
ROOT=${ROOT:-/}
ROOT=${ROOT%/}  # "" for /, so "$ROOT/etc" is /etc
UNITS=(appliance-disks.service appliance-autotune.service appliance.socket appliance.service)

prefix=()
[[ -n "$ROOT" ]] && prefix=(--prefix "$ROOT")

# The service user: a system account with no shell and no home. Its group also owns
# /run/appliance (root:appliance 0750), which the boot steps write and the service reads.
if grep -q '^appliance:' "$ROOT/etc/passwd"; then
  echo "install-units: user appliance exists"
else
  useradd "${prefix[@]}" --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "appliance image server" appliance
  echo "install-units: created system user appliance"
fi

install -D -m 0644 "$SRC/configs/appliance.json" "$ROOT/etc/appliance/appliance.json"
echo "install-units: /etc/appliance/appliance.json"

if [[ -d "$ROOT/etc/cloud/cloud.cfg.d" ]]; then
  install -m 0644 "$SRC/configs/cloud-init/90-appliance.cfg" "$ROOT/etc/cloud/cloud.cfg.d/"
  echo "install-units: /etc/cloud/cloud.cfg.d/90-appliance.cfg"
else
  echo "install-units: no cloud-init in the image; its settings are not installed"
fi

# The units' Documentation= points here (when the build uploaded README.md and docs/).
if [[ -f "$SRC/README.md" ]]; then
  install -D -m 0644 "$SRC/README.md" "$ROOT/usr/share/doc/appliance/README.md"
fi
if [[ -d "$SRC/docs" ]]; then
  install -d -m 0755 "$ROOT/usr/share/doc/appliance"
  cp -r "$SRC/docs/." "$ROOT/usr/share/doc/appliance/"
  chmod -R u=rwX,go=rX "$ROOT/usr/share/doc/appliance"
fi

for unit in "${UNITS[@]}"; do
  install -D -m 0644 "$SRC/systemd/$unit" "$ROOT/etc/systemd/system/$unit"
done
# --root works on the files alone, with or without a running systemd.
systemctl --root="${ROOT:-/}" enable "${UNITS[@]}"
echo "install-units: enabled ${UNITS[*]}"
