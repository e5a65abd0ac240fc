#!/usr/bin/env bash
# Builds a wheelhouse for the image: a directory from which
#   pip install --no-index --find-links OUT_DIR appliance
# works on the target Debian release's python3 with no network.
#
# usage: scripts/build-wheelhouse.sh OUT_DIR [--release 13|12]
#
# - The appliance wheel is compiled inside a chroot of the target release (mmdebstrap, Debian
#   packages only; the chroot has no network while building) from a copy of the working tree:
#   the files `git ls-files` lists plus untracked, not ignored ones, so uncommitted edits count.
#   Build requirements the release does not package in a fitting version are downloaded as
#   wheels on the host and installed in the chroot from files.
# - The runtime dependencies ([project] dependencies of pyproject.toml) are downloaded on the host
#   as binary wheels for the chroot's Python and glibc.
# - OUT_DIR/runtime-packages.txt lists the Debian packages the compiled extension links against
#   (its direct DT_NEEDED libraries, resolved with ldd, owners from dpkg), for install-packages.
#
# Cached under $APPLIANCE_CACHE (default .cache/image in the repository): the build chroot
# tarball keyed by its recipe and the ISO week, the wheel keyed by the chroot and a hash of the
# sources that go into it, the downloaded dependencies keyed by their list, the target Python and
# the ISO week. OUT_DIR's *.whl and runtime-packages.txt are replaced; the last line of stdout is
# OUT_DIR. Runs as root when the wheel has to be built.
set -o errexit -o nounset -o pipefail

usage() {
  cat <<'EOF'
usage: build-wheelhouse.sh OUT_DIR [--release 13|12]
  OUT_DIR        directory that receives the wheels and runtime-packages.txt (created if absent;
                 its *.whl and runtime-packages.txt are replaced)
  --release N    Debian release whose python3 the wheels are for: 13 (trixie, the default) or 12
Prints OUT_DIR on the last line of stdout. Cache: $APPLIANCE_CACHE (default .cache/image).
EOF
}

self=$(realpath "${BASH_SOURCE[0]}")
here=$(dirname "$self")
# shellcheck source=scripts/lib-cache.sh
source "$here/lib-cache.sh"

parse_out_dir_and_release "$@"

repo=$(cache_repo_root)
cache=$(cache_root)
week=$(cache_week)
mkdir -p "$out_dir" "$cache/scratch" "$cache/chroot" "$cache/wheel" "$cache/deps"
out_dir=$(cd "$out_dir" && pwd)

host_python() {
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 "$@"
  else
    "$repo/.venv/bin/python" "$@"
  fi
}

# --- The build chroot's recipe ---------------------------------------------------------------
# The Makefile's BUILD_PACKAGES (the -dev libraries the core links), the tools pip and
# scikit-build-core drive, and the build requirements where the release packages them (trixie
# has python3-scikit-build-core and pybind11; bookworm's pybind11 is too old, so none there).
# shellcheck disable=SC2016 # $(BUILD_PACKAGES) is make's, not the shell's
build_packages=$(make -C "$repo" --no-print-directory --silent \
  --eval='print-build-packages: ; @echo $(BUILD_PACKAGES)' print-build-packages)
read -r -a chroot_packages <<<"$build_packages"
chroot_packages+=(ninja-build python3-pip python3-venv python3-packaging)
case "$release" in
  13) chroot_packages+=(python3-scikit-build-core pybind11-dev python3-pybind11) ;;
esac
mapfile -t chroot_packages < <(printf '%s\n' "${chroot_packages[@]}" | sort -u)
mapfile -t mmdebstrap_options < <(mmdebstrap_common_options)
chroot_key=$(printf '%s\n' "suite=$suite" "variant=apt" "${chroot_packages[@]}" \
  "${mmdebstrap_options[@]}" "week=$week" | cache_key)
chroot_tar="$cache/chroot/build-$release-$chroot_key.tar"

# --- The sources that go into the wheel ------------------------------------------------------
# Tracked files plus untracked, not ignored ones, as they are in the working tree; only those
# the wheel is made of (scikit-build-core reads pyproject.toml, README.md and .gitignore, builds
# native/ and packages appliance/).
list_sources() {
  local path
  git -C "$repo" ls-files -z --cached --others --exclude-standard \
    -- pyproject.toml README.md .gitignore appliance native |
    while IFS= read -r -d '' path; do
      if [[ -f "$repo/$path" ]]; then printf '%s\0' "$path"; fi
    done | sort -z -u
}
sources_hash=$(list_sources | (cd "$repo" && xargs -0 sha256sum --) | cache_key)
wheel_key=$({ echo "chroot=$chroot_key sources=$sources_hash"; cat "$self" "$here/lib-cache.sh"; } |
  cache_key)
wheel_dir="$cache/wheel/$release-$wheel_key"

work=""
cleanup() {
  local rc=$?
  trap - EXIT
  # The chroot's mounts live in a private mount namespace (unshare): nothing to unmount here.
  # --one-file-system all the same, so a stray mount is never descended into.
  if [[ -n "$work" && -d "$work" ]]; then
    rm -rf --one-file-system "$work"
  fi
  [[ $rc -eq 0 ]] || log "build-wheelhouse failed rc=$rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_chroot() {
  mmdebstrap --variant=apt --include="$(IFS=,; echo "${chroot_packages[*]}")" \
    "${mmdebstrap_options[@]}" "$suite" "$work/chroot.tar" >&2
  mv "$work/chroot.tar" "$chroot_tar"
  # Last week's chroot (or an older recipe's) is of no use any more.
  find "$cache/chroot" -maxdepth 1 -name "build-$release-*.tar" ! -name "${chroot_tar##*/}" -delete
}

extract_chroot() {
  mkdir "$work/tree"
  tar --extract --file "$chroot_tar" --directory "$work/tree" --numeric-owner \
    --preserve-permissions
  mkdir -p "$work/tree/build/src" "$work/tree/build/out"
  list_sources | tar --create --directory "$repo" --null --files-from=- --file - |
    tar --extract --directory "$work/tree/build/src" --file -
  write_chroot_script >"$work/tree/build/run.sh"
}

# Runs /build/run.sh in the chroot: own mount, PID and network namespaces (no network; /proc
# mounted inside, gone when it exits), environment cleared (the host's pip settings stay out).
in_chroot() {
  unshare --mount --net --pid --fork --mount-proc="$work/tree/proc" \
    chroot "$work/tree" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/build \
    LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    bash /build/run.sh "$@"
}

write_chroot_script() {
  cat <<'EOF'
set -o errexit -o nounset -o pipefail
cd /build/src
case "$1" in
  probe)
    # The target's Python and glibc, and the build requirements the release does not satisfy.
    python3 - <<'PY'
import importlib.metadata
import platform
import sys
import tomllib

from packaging.requirements import Requirement

print(f"PYTHON_VERSION={sys.version_info[0]}.{sys.version_info[1]}")
print(f"GLIBC_VERSION={platform.libc_ver()[1]}")
with open("pyproject.toml", "rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
for text in requires:
    requirement = Requirement(text)
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is None or not requirement.specifier.contains(version, prereleases=True):
        print(f"UNSATISFIED={text}")
PY
    ;;
  build)
    shift
    python=python3
    if [ "$#" -gt 0 ]; then
      python3 -m venv --system-site-packages /build/venv
      /build/venv/bin/pip install --quiet --no-index --find-links /build/buildreqs "$@"
      python=/build/venv/bin/python
    fi
    "$python" -m pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /build/out . >&2
    ;;
  runtime-packages)
    # The Debian packages that own the extension's direct DT_NEEDED libraries.
    wheels=(/build/out/appliance-*.whl)
    python3 -m zipfile -e "${wheels[0]}" /build/unpacked
    native=(/build/unpacked/appliance/_native*.so)
    ldd "${native[0]}" >/build/ldd
    objdump -p "${native[0]}" | awk '$1 == "NEEDED" { print $2 }' |
      while read -r library; do
        # "libfoo.so.1 => /path (addr)", or for the dynamic loader "/path/ld-linux... (addr)"
        path=$(awk -v lib="$library" '
          $1 == lib && $2 == "=>" { print $3; exit }
          { n = split($1, part, "/") }
          n > 1 && part[n] == lib { print $1; exit }' /build/ldd)
        [ -n "$path" ] || { echo "ldd cannot resolve $library" >&2; exit 1; }
        # merged /usr: the package may own /lib/... or /usr/lib/... of the same file
        case "$path" in /usr/*) other=${path#/usr} ;; *) other=/usr$path ;; esac
        owners=$(dpkg-query --search "$path" 2>/dev/null || dpkg-query --search "$other") || {
          echo "no package owns $path" >&2
          exit 1
        }
        printf '%s\n' "$owners" | awk -F': ' '!/^diversion/ { print $1 }' | tr ',' '\n' |
          sed 's/^ *//; s/:.*$//'
      done | grep -v -- '-dev$' | sort -u
    ;;
esac
EOF
}

# Binary wheels for the target: CPython X.Y on glibc 2.N, any manylinux tag up to 2.N.
download_wheels() {
  local dest=$1 python_version=$2 glibc_version=$3
  shift 3
  local platforms=() minor
  for ((minor = ${glibc_version#*.}; minor >= 5; minor--)); do
    platforms+=(--platform "manylinux_2_${minor}_x86_64")
  done
  platforms+=(--platform manylinux2014_x86_64 --platform linux_x86_64)
  host_python -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$python_version" --implementation cp "${platforms[@]}" \
    --dest "$dest" "$@" >&2
}

build_wheel() {
  local probe python_version glibc_version unsatisfied=() line
  timed extract-chroot extract_chroot
  probe=$(in_chroot probe)
  python_version=$(sed -n 's/^PYTHON_VERSION=//p' <<<"$probe")
  glibc_version=$(sed -n 's/^GLIBC_VERSION=//p' <<<"$probe")
  while IFS= read -r line; do
    [[ "$line" == UNSATISFIED=* ]] && unsatisfied+=("${line#UNSATISFIED=}")
  done <<<"$probe"
  log "target python=$python_version glibc=$glibc_version build-requirements-from-wheels=${#unsatisfied[@]}"
  if ((${#unsatisfied[@]} > 0)); then
    # Not packaged by this release (in a fitting version): wheels fetched on the host, kept
    # with the chroot, installed in the chroot from files.
    local reqs_dir
    reqs_dir="${chroot_tar%.tar}.buildreqs-$(printf '%s\n' "${unsatisfied[@]}" | cache_key)"
    if [[ ! -d "$reqs_dir" ]]; then
      timed download-build-requirements download_wheels "$work/buildreqs" "$python_version" \
        "$glibc_version" "${unsatisfied[@]}"
      mv "$work/buildreqs" "$reqs_dir"
    fi
    cp -r "$reqs_dir" "$work/tree/build/buildreqs"
  fi
  timed compile in_chroot build "${unsatisfied[@]}"
  in_chroot runtime-packages >"$work/runtime-packages.txt"
  mkdir "$work/wheel"
  cp "$work"/tree/build/out/appliance-*.whl "$work/runtime-packages.txt" "$work/wheel/"
  printf 'PYTHON_VERSION=%s\nGLIBC_VERSION=%s\n' "$python_version" "$glibc_version" \
    >"$work/wheel/target.env"
  mv "$work/wheel" "$wheel_dir"
}

log "build-wheelhouse release=$release chroot=$chroot_key wheel=$wheel_key"
if [[ ! -d "$wheel_dir" ]]; then
  require_root build-wheelhouse.sh
  "$here/install-packages.sh" mmdebstrap >&2
  exec 9>"$cache/scratch/wheelhouse-$release.lock"
  flock 9
  work=$(mktemp -d "$cache/scratch/wheelhouse-$release-XXXXXX")
  if [[ ! -f "$chroot_tar" ]]; then
    timed build-chroot build_chroot
  fi
  if [[ ! -d "$wheel_dir" ]]; then
    build_wheel
  fi
  # Wheels of sources long gone: a rebuild costs a minute or two, the disk is not free.
  find "$cache/wheel" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} +
fi

# --- Runtime dependencies, for the target's Python and glibc ----------------------------------
target_python=$(sed -n 's/^PYTHON_VERSION=//p' "$wheel_dir/target.env")
target_glibc=$(sed -n 's/^GLIBC_VERSION=//p' "$wheel_dir/target.env")
mapfile -t dependencies < <(host_python -c '
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
' "$repo/pyproject.toml")
deps_key=$(printf '%s\n' "${dependencies[@]}" "python=$target_python" "glibc=$target_glibc" \
  "week=$week" | cache_key)
deps_dir="$cache/deps/$release-$deps_key"
if [[ ! -d "$deps_dir" ]]; then
  [[ -n "$work" ]] || work=$(mktemp -d "$cache/scratch/wheelhouse-$release-XXXXXX")
  timed download-dependencies download_wheels "$work/deps" "$target_python" "$target_glibc" \
    "${dependencies[@]}"
  mv "$work/deps" "$deps_dir"
  find "$cache/deps" -mindepth 1 -maxdepth 1 -type d -name "$release-*" \
    ! -name "${deps_dir##*/}" -exec rm -rf {} +
fi

rm -f "$out_dir"/*.whl "$out_dir/runtime-packages.txt"
cp "$wheel_dir"/*.whl "$wheel_dir/runtime-packages.txt" "$deps_dir"/*.whl "$out_dir/"
log "wheelhouse $out_dir wheels=$(find "$out_dir" -maxdepth 1 -name '*.whl' | wc -l)" \
  "runtime-packages=$(paste -sd, "$out_dir/runtime-packages.txt")"
echo "$out_dir"
