#!/usr/bin/env bash
# Hardens the image and removes what the build left behind, so every instance starts as a first
# boot with its own keys and IDs: SSH by key only and never as root, root's password locked, no
# authorized_keys (cloud-init installs the launch key at first boot), no host keys, machine-id,
# histories, apt lists, logs or temporary files. Runs as root, second to last (validate.sh checks
# all of this).
#
#   ROOT  the image's root (default /); another directory for tests
set -o errexit -o nounset -o pipefail

ROOT=${ROOT:-/}
ROOT=${ROOT%/}  # "" for /, so "$ROOT/etc" is /etc
say() { echo "harden: $*"; }

# Home directories: root's, /home/*, and any other account's that exists.
homes() {
  local home
  { echo /root; cut -d: -f6 "$ROOT/etc/passwd"; } | sort -u | while read -r home; do
    [[ -n "$home" && "$home" != / && -d "$ROOT$home" ]] && echo "$ROOT$home"
  done
  for home in "$ROOT"/home/*; do [[ -d "$home" ]] && echo "$home"; done
  return 0
}

# sshd takes the first value it reads for a keyword, and Debian's sshd_config includes
# sshd_config.d/*.conf first, in name order: 00- wins over cloud-init's 50-cloud-init.conf.
install -d -m 0755 "$ROOT/etc/ssh/sshd_config.d"
cat >"$ROOT/etc/ssh/sshd_config.d/00-appliance.conf" <<'EOF'
# The appliance: key-based SSH only, never as root (packer/scripts/harden.sh).
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PermitEmptyPasswords no
EOF
chmod 0644 "$ROOT/etc/ssh/sshd_config.d/00-appliance.conf"
say "sshd: no passwords, no root"

# Root's password locked, and any other account's that has one.
prefix=()
[[ -n "$ROOT" ]] && prefix=(--prefix "$ROOT")
awk -F: '$1 == "root" || ($2 !~ /^[!*]/) { print $1 }' "$ROOT/etc/shadow" | while read -r user; do
  usermod "${prefix[@]}" --lock "$user"
  say "password locked: $user"
done

while read -r home; do
  rm -f "$home"/.ssh/authorized_keys "$home"/.ssh/authorized_keys2 "$home"/.ssh/known_hosts \
    "$home"/.bash_history "$home"/.python_history "$home"/.lesshst "$home"/.viminfo \
    "$home"/.wget-hsts "$home"/.sqlite_history "$home"/.psql_history "$home"/.mysql_history \
    "$home"/.zsh_history "$home"/.sudo_as_admin_successful
  rm -rf "$home"/.cache
done < <(homes)
say "authorized_keys, known_hosts, histories and caches removed from every home"

rm -f "$ROOT"/etc/ssh/ssh_host_*
say "SSH host keys removed (regenerated at first boot)"

# Empty, not deleted: systemd makes a new ID at boot. A missing file would be a systemd "first
# boot", which re-applies unit presets over what install-units.sh enabled.
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
say "machine-id emptied"

rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin \
  "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/archives/partial/*
install -d -m 0755 "$ROOT/var/lib/apt/lists/partial"
say "apt lists and caches removed"

if [[ -e "$ROOT/usr/bin/cloud-init" ]]; then
  if [[ -z "$ROOT" ]]; then
    cloud-init clean --logs
  else  # what `cloud-init clean --logs` removes, for a tree that is not the running system
    find "$ROOT/var/lib/cloud" -mindepth 1 -maxdepth 1 ! -name 'seed' -exec rm -rf {} +
    rm -f "$ROOT"/var/log/cloud-init*.log
  fi
  say "cloud-init state and logs removed: the next boot is a first boot"
fi

# Logs: journald on the running system writes to /run from here on, so /var/log/journal stays
# empty until the next boot flushes the new instance's journal there.
if [[ -z "$ROOT" && -d /run/systemd/system ]] && command -v journalctl >/dev/null; then
  journalctl --relinquish-var || true
fi
if [[ -d "$ROOT/var/log" ]]; then
  rm -rf "$ROOT"/var/log/journal/*
  find "$ROOT/var/log" -type f \( -name '*.gz' -o -name '*.xz' -o -name '*.[0-9]' \
    -o -name '*.old' \) -delete
  find "$ROOT/var/log" -type f -exec truncate --size=0 {} +
fi
rm -f "$ROOT/var/lib/wtmpdb/wtmp.db" "$ROOT/var/lib/lastlog/lastlog2.db"
say "logs emptied, journal files removed"

# /tmp and /var/tmp: Packer's uploads (script_*.sh, /tmp/appliance-src) and anything else.
# Running services' private directories stay; systemd-tmpfiles removes them at boot.
for dir in "$ROOT/tmp" "$ROOT/var/tmp"; do
  [[ -d "$dir" ]] || continue
  find "$dir" -mindepth 1 -maxdepth 1 ! -name 'systemd-private-*' -exec rm -rf {} +
done
say "/tmp and /var/tmp emptied"
