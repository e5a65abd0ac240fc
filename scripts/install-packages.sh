#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are not installed yet.
# Prints nothing and touches nothing when all are present. A package named like
# a command that is already on PATH counts as present: Node.js from NodeSource,
# for one, brings its own npm and cannot be installed next to Debian's.
set -o errexit -o nounset -o pipefail

missing=()
for package in "$@"; do
  status=$(dpkg-query --show --showformat='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || command -v "$package" >/dev/null || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing Debian packages: ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# An old package index cannot find current versions: refresh it once, then install.
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
