#!/usr/bin/env bash
# Installs the appliance into a virtual environment at /opt/appliance, and its sample images.
# From a wheelhouse built for this Debian release when the payload holds one (no network, no
# compiler in the image); else from the source distribution, compiled here with Debian's -dev
# packages, which are purged again afterwards (the shared libraries they pulled in stay).
set -o errexit -o nounset -o pipefail

src=${APPLIANCE_SRC:?}
prefix=/opt/appliance
export DEBIAN_FRONTEND=noninteractive

shopt -s nullglob
wheels=("$src"/payload/appliance-*.whl)
sdists=("$src"/payload/appliance-*.tar.gz)
shopt -u nullglob

python3 -m venv "$prefix"
if [[ ${#wheels[@]} -gt 0 ]]; then
  "$prefix/bin/pip" install --quiet --no-index --find-links "$src/payload" appliance
elif [[ ${#sdists[@]} -gt 0 ]]; then
  sdist=${sdists[0]}
  # The build needs are listed once, in the source tree (the Makefile reads the same file).
  mapfile -t build_packages < <(tar -xzf "$sdist" --wildcards -O '*/native/build-packages.txt' |
    grep -v '^[[:space:]]*\(#\|$\)')
  before=$(mktemp)
  dpkg-query --show --showformat='${Package}\n' | sort >"$before"
  apt-get install -y -qq --no-install-recommends "${build_packages[@]}"
  "$prefix/bin/pip" install --quiet --upgrade pip
  "$prefix/bin/pip" install --quiet "$sdist"
  # Keep the packages that own the libraries the extension links; purge what the build added.
  # ldd prints /lib/... while dpkg knows /usr/lib/... (merged /usr): resolve first.
  mapfile -t runtime < <(
    find "$prefix" -name '_native*.so' -exec ldd {} + | awk '/=> \//{print $3}' |
      xargs -r readlink -f | sort -u | xargs -r dpkg -S 2>/dev/null | cut -d: -f1 | sort -u
  )
  [[ ${#runtime[@]} -gt 0 ]] && apt-mark manual "${runtime[@]}" >/dev/null
  mapfile -t added < <(dpkg-query --show --showformat='${Package}\n' | sort | comm -13 "$before" -)
  mapfile -t purge < <(printf '%s\n' "${added[@]}" | grep -vxF -f <(printf '%s\n' "${runtime[@]}"))
  [[ ${#purge[@]} -gt 0 ]] && apt-get purge -y -qq "${purge[@]}"
  apt-get autoremove -y -qq --purge
  rm -f "$before"
else
  echo "install-appliance: $src/payload holds neither appliance-*.whl nor appliance-*.tar.gz" >&2
  exit 1
fi

install -d -m 0755 "$prefix/samples"
cp -r "$src"/samples/. "$prefix/samples/"
chmod -R u=rwX,go=rX "$prefix/samples"
"$prefix/bin/appliance" --version
echo "install-appliance: $(find "$prefix/samples" -type f | wc -l) sample images in $prefix/samples"
