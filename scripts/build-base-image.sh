#!/usr/bin/env bash
# Builds the local stand-in for Debian's official cloud AMI: a bootable, compressed qcow2 (4 GiB
# virtual; MBR, one ext4 partition labelled rootfs, extlinux) with Debian's cloud kernel, systemd-
# networkd DHCP, cloud-init reading EC2's IMDS, openssh-server and sudo. As on EC2, the user admin
# and its SSH key come from cloud-init at first boot (the key served at public-keys/0/openssh-key);
# the image holds no authorized_keys and no SSH host keys.
#
# usage: scripts/build-base-image.sh OUT_DIR [--release 13|12]
#
# The image is OUT_DIR/debian-<release>-base-<key>.qcow2, key = sha256 of this script, the shared
# helpers, the release and the ISO week. When that file exists nothing is built. The path of the
# qcow2 is the last line of stdout; progress and step timings go to stderr. Work files live under
# $APPLIANCE_CACHE (default .cache/image in the repository). Runs as root.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<'EOF'
usage: build-base-image.sh OUT_DIR [--release 13|12]
  OUT_DIR        directory that receives debian-<release>-base-<key>.qcow2 (created if absent)
  --release N    Debian release of the image: 13 (trixie, the default, as the AMI) or 12 (bookworm)
Prints the qcow2's path on the last line of stdout. Cache: $APPLIANCE_CACHE (default .cache/image).
EOF
}

self=$(realpath "${BASH_SOURCE[0]}")
here=$(dirname "$self")
# shellcheck source=scripts/lib-cache.sh
source "$here/lib-cache.sh"

parse_out_dir_and_release "$@"

key=$({ cat "$self" "$here/lib-cache.sh"; echo "release=$release week=$(cache_week)"; } | cache_key)
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
image="$out_dir/debian-$release-base-$key.qcow2"
if [[ -f "$image" ]]; then
  echo "$image"
  exit 0
fi

require_root build-base-image.sh
"$here/install-packages.sh" mmdebstrap extlinux syslinux-common fdisk e2fsprogs qemu-utils >&2

cache=$(cache_root)
mkdir -p "$cache/scratch"
# One build per release at a time; a second caller waits, then finds the image.
exec 9>"$cache/scratch/base-$release.lock"
flock 9
if [[ -f "$image" ]]; then
  echo "$image"
  exit 0
fi

# What Debian's cloud AMI has that the appliance relies on, and nothing for the desktop.
packages=(
  linux-image-cloud-amd64 systemd-sysv udev dbus systemd-resolved iproute2 netbase
  openssh-server sudo cloud-init cloud-guest-utils ca-certificates curl
  python3 python3-venv e2fsprogs
)

work=""
mnt=""
loop=""
cleanup() {
  local rc=$?
  trap - EXIT
  if [[ -n "$mnt" ]] && mountpoint -q "$mnt"; then
    umount "$mnt" || umount --lazy "$mnt" || true
  fi
  if [[ -n "$loop" ]]; then
    losetup --detach "$loop" || true
  fi
  if [[ -n "$work" && -d "$work" ]]; then
    rm -rf --one-file-system "$work"
  fi
  [[ $rc -eq 0 ]] || log "build-base-image failed rc=$rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
work=$(mktemp -d "$cache/scratch/base-$release-XXXXXX")
mnt="$work/mnt"
mkdir "$mnt"

build_rootfs() {
  local options
  mapfile -t options < <(mmdebstrap_common_options)
  mmdebstrap --variant=apt --include="$(IFS=,; echo "${packages[*]}")" "${options[@]}" \
    "$suite" "$work/tree.tar" >&2
}

# An MBR disk with one bootable partition from 1 MiB to the end, formatted ext4 (label rootfs)
# and mounted on $mnt. No udev here, so `losetup -P` would create no partition device: the
# partition is reached through a loop device at its offset instead.
make_disk() {
  truncate -s 4G "$work/disk.raw"
  printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$work/disk.raw"
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
  loop=$(losetup --find --show --offset $((2048 * 512)) "$work/disk.raw")
  mkfs.ext4 -q -L rootfs "$loop"
  mount "$loop" "$mnt"
  tar --extract --file "$work/tree.tar" --directory "$mnt" --numeric-owner \
    --preserve-permissions --xattrs --xattrs-include='*'
  rm -f "$work/tree.tar"
}

# Files written into the image; $1 is the root of the mounted image.
configure_system() {
  local root=$1
  echo debian >"$root/etc/hostname"
  printf '%s\n' '127.0.0.1 localhost' '::1 localhost ip6-localhost ip6-loopback' \
    'ff02::1 ip6-allnodes' 'ff02::2 ip6-allrouters' >"$root/etc/hosts"
  echo 'LABEL=rootfs / ext4 rw,discard,errors=remount-ro 0 1' >"$root/etc/fstab"
  # No identity baked: machine-id is made at first boot, SSH host keys too (below).
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
  # dpkg already ran ldconfig and rebuilt the journal catalog: mark /etc and /var up to date with
  # /usr so the first boot skips ldconfig.service & co (seconds of CPU under TCG). A later apt
  # install in the image touches /usr again and brings them back, as it should.
  touch --reference="$root/usr" "$root/etc/.updated" "$root/var/.updated"

  cat >"$root/etc/systemd/network/80-dhcp.network" <<'EOF'
# Local base image: DHCP on every NIC (the kernel names them eth*: net.ifnames=0).
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
  ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
}

configure_cloud_init() {
  local root=$1
  cat >"$root/etc/cloud/cloud.cfg.d/01-local-base-image.cfg" <<'EOF'
# Local base image: behave like Debian's cloud AMI on EC2.
# Only EC2 (or nothing). strict_id false: QEMU's SMBIOS says "Amazon EC2" but the rest of the
# platform checks would fail, and the datasource must still read the IMDS at 169.254.169.254.
datasource_list: [ Ec2, None ]
datasource:
  Ec2:
    strict_id: false
    metadata_urls: [ "http://169.254.169.254" ]
    timeout: 5
    max_wait: 30
# systemd-networkd owns the network (80-dhcp.network), not cloud-init.
network:
  config: disabled
# The login user of Debian's AMI: admin, key from the IMDS, password locked, sudo without one.
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
# C.UTF-8 is built into glibc: nothing to generate (bookworm's cloud-init fails on en_US.UTF-8,
# which the image does not have; trixie's spends seconds on it under TCG).
locale: C.UTF-8
# ed25519 host key only: RSA key generation costs seconds of boot under QEMU TCG.
ssh_deletekeys: true
ssh_genkeytypes: [ ed25519 ]
EOF
}

# Without cloud-init's first-boot run (an image booted again with the same instance id after its
# host keys were removed) sshd would have no host key: generate the ed25519 one if it is missing.
configure_ssh_host_key() {
  local root=$1
  cat >"$root/etc/systemd/system/ssh-hostkey-ed25519.service" <<'EOF'
[Unit]
Description=Generate the SSH ed25519 host key if there is none
Documentation=man:ssh-keygen(1)
After=cloud-init.service
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
EOF
  # The image's own systemctl, with a /proc that lives in a private mount namespace.
  unshare --mount --pid --fork --mount-proc="$root/proc" chroot "$root" \
    systemctl enable --quiet systemd-networkd.service systemd-resolved.service \
    ssh-hostkey-ed25519.service
}

# extlinux on the partition; the MBR code hands it the partition's offset. /vmlinuz and
# /initrd.img are Debian's symlinks to the current kernel, so a kernel upgrade keeps booting.
install_bootloader() {
  local root=$1
  mkdir -p "$root/boot/extlinux"
  cat >"$root/boot/extlinux/extlinux.conf" <<'EOF'
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=rootfs ro console=ttyS0 net.ifnames=0
EOF
  extlinux --install "$root/boot/extlinux" 2>&1 | sed 's/^/extlinux: /' >&2
  [[ -e "$root/vmlinuz" && -e "$root/initrd.img" ]] || {
    echo "no /vmlinuz or /initrd.img in the image" >&2
    return 1
  }
}

finish_disk() {
  umount "$mnt"
  losetup --detach "$loop"
  loop=""
  qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/image.qcow2"
  mv "$work/image.qcow2" "$image"
  # Older keys of this release (last week's, an older recipe) are of no use any more.
  find "$out_dir" -maxdepth 1 -name "debian-$release-base-*.qcow2" ! -name "${image##*/}" -delete
}

log "build-base-image release=$release suite=$suite key=$key"
timed mmdebstrap build_rootfs
timed disk make_disk
timed configure configure_system "$mnt"
configure_cloud_init "$mnt"
configure_ssh_host_key "$mnt"
timed bootloader install_bootloader "$mnt"
timed qcow2 finish_disk
log "image $image bytes=$(stat -c %s "$image")"
echo "$image"
