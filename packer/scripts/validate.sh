#!/usr/bin/env bash
# Runs last inside the image and fails the build on anything left behind or missing: prints one
# line per check (ok / FAIL, with what was found) and exits 1 if any check failed.
#
#   ROOT  the image's root (default /); another directory for tests
set -o errexit -o nounset -o pipefail

ROOT=${ROOT:-/}
ROOT=${ROOT%/}  # "" for /, so "$ROOT/etc" is /etc
APPLIANCE="$ROOT/opt/appliance/bin/appliance"
UNITS=(appliance-disks.service appliance-autotune.service appliance.socket appliance.service)
failed=0
checks=0

# check NAME FOUND: ok when FOUND is empty, else FAIL listing it.
check() {
  checks=$((checks + 1))
  if [[ -z "$2" ]]; then
    echo "ok   $1"
  else
    failed=$((failed + 1))
    echo "FAIL $1: $(echo "$2" | paste -sd ' ')"
  fi
}

homes() {
  local home
  { echo /root; cut -d: -f6 "$ROOT/etc/passwd"; } | sort -u | while read -r home; do
    [[ -n "$home" && "$home" != / && -d "$ROOT$home" ]] && echo "$ROOT$home"
  done
  for home in "$ROOT"/home/*; do [[ -d "$home" ]] && echo "$home"; done
  return 0
}
mapfile -t HOMES < <(homes | sort -u)

found=$(for h in "${HOMES[@]}"; do
  find "$h/.ssh" -maxdepth 1 -name 'authorized_keys*' -size +0 2>/dev/null || true
done)
check "no authorized_keys with content" "$found"

found=$(for h in "${HOMES[@]}"; do
  find "$h" -maxdepth 1 -type f \( -name '.*_history' -o -name '.*hst' -o -name '.*-hsts' \
    -o -name .viminfo \) 2>/dev/null || true
done)
check "no shell or tool histories" "$found"

check "no SSH host keys" "$(find "$ROOT/etc/ssh" -maxdepth 1 -name 'ssh_host_*' 2>/dev/null)"

# Deleted host keys must come back at boot, or nobody can log in.
regen=""
[[ -e "$ROOT/usr/bin/cloud-init" ]] && regen=cloud-init
[[ -z "$regen" ]] && regen=$(grep -rls 'ssh-keygen' "$ROOT/etc/systemd/system" \
  "$ROOT/usr/lib/systemd/system" "$ROOT/lib/systemd/system" 2>/dev/null | head -n 1 || true)
check "SSH host keys regenerated at boot (${regen:-nothing})" \
  "$([[ -z "$regen" ]] && echo "neither cloud-init nor a unit running ssh-keygen")"

found=""
if [[ ! -e "$ROOT/etc/machine-id" ]]; then
  found="/etc/machine-id is missing (it must exist, empty)"
elif [[ -s "$ROOT/etc/machine-id" ]]; then
  found="/etc/machine-id is not empty"
fi
[[ -e "$ROOT/var/lib/dbus/machine-id" || -L "$ROOT/var/lib/dbus/machine-id" ]] &&
  found+=" /var/lib/dbus/machine-id exists"
check "machine-id empty" "${found# }"

check "root password locked" \
  "$(awk -F: '$1 == "root" && $2 !~ /^[!*]/ { print "root" }' "$ROOT/etc/shadow")"
check "no account with a usable password" \
  "$(awk -F: '$2 !~ /^[!*]/ { print $1 }' "$ROOT/etc/shadow")"

# sshd's effective settings for a root login from outside, Match blocks included. It will not
# run without a host key, so it gets a throwaway one.
found=""
if ! command -v sshd >/dev/null; then
  found="sshd not found"
else
  keydir=$(mktemp -d)
  trap 'rm -rf "$keydir"' EXIT
  if ! ssh-keygen -q -t ed25519 -N '' -C validate -f "$keydir/key"; then
    found="ssh-keygen failed"
  elif effective=$(sshd -T -f "$ROOT/etc/ssh/sshd_config" -h "$keydir/key" \
    -C user=root,host=client.invalid,addr=192.0.2.1 2>&1); then
    for want in "passwordauthentication no" "kbdinteractiveauthentication no" \
      "permitrootlogin no" "permitemptypasswords no"; do
      grep -qx "$want" <<<"$effective" || found+="${found:+, }not '$want'"
    done
  else
    found="sshd -T failed: $(tail -n 1 <<<"$effective")"
  fi
fi
check "sshd allows no passwords and no root" "$found"

found=$({
  find "$ROOT/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock
  find "$ROOT/var/cache/apt" \( -name '*.deb' -o -name '*.bin' \)
} 2>/dev/null || true)
check "no apt lists or package caches" "$found"

found=$(find "$ROOT/var/log" -type f \( -size +0 -o -path '*/journal/*' \) 2>/dev/null || true)
check "no logs or journal files" "$found"

if [[ -e "$ROOT/usr/bin/cloud-init" ]]; then
  check "cloud-init state clean (next boot is a first boot)" \
    "$(find "$ROOT/var/lib/cloud" -mindepth 1 -maxdepth 1 ! -name seed 2>/dev/null || true)"
fi

found=""
for unit in "${UNITS[@]}"; do
  state=$(systemctl --root="${ROOT:-/}" is-enabled "$unit" 2>/dev/null || true)
  [[ "$state" == enabled ]] || found+="${found:+, }$unit is ${state:-missing}"
done
check "units enabled" "$found"

found=$(awk -F: '$1 == "appliance" { print $7 }' "$ROOT/etc/passwd")
case "$found" in
  "") found="no user appliance" ;;
  */nologin | */false) found="" ;;
  *) found="user appliance has the login shell $found" ;;
esac
check "service user appliance without a login shell" "$found"

version=""
if [[ ! -x "$APPLIANCE" ]]; then
  found="/opt/appliance/bin/appliance is missing"
elif ! found=$("$APPLIANCE" --version 2>&1); then
  found="appliance --version failed: $found"
else
  version=$found found=""
fi
check "appliance installed${version:+ ($version)}" "$found"

if [[ ! -x "$APPLIANCE" ]]; then
  found="cannot check without the appliance"
elif ! found=$("$APPLIANCE" check-config "$ROOT/etc/appliance/appliance.json" 2>&1); then
  [[ -n "$found" ]] || found="check-config failed"
else
  found=""
fi
check "baked config passes appliance check-config" "$found"

found=$(find "$ROOT/opt/appliance/samples" -mindepth 1 -type f -print -quit 2>/dev/null || true)
check "sample images present" "$([[ -z "$found" ]] && echo "/opt/appliance/samples is empty")"

echo "validate: $checks checks, $failed failed"
[[ "$failed" -eq 0 ]]
