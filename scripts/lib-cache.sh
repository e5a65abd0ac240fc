# shellcheck shell=bash
# Helpers shared by build-base-image.sh and build-wheelhouse.sh: the cache directory, cache keys,
# step timings, the Debian release table and the shared command line. Sourced, never run;
# defines functions only.

# The repository root (this file lives in scripts/).
cache_repo_root() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

# The cache directory: $APPLIANCE_CACHE, else .cache/image in the repository (ignored by git).
cache_root() {
  local root=${APPLIANCE_CACHE:-$(cache_repo_root)/.cache/image}
  mkdir -p "$root"
  cd "$root" && pwd
}

# ISO year and week (e.g. 2026-W48): part of every key that pulls from the Debian archive, so a
# cached artefact is rebuilt once a week and picks up security updates.
cache_week() {
  date -u +%G-W%V
}

# A short key: the first 16 hex digits of the sha256 of its standard input.
cache_key() {
  sha256sum | cut -c1-16
}

# Debian codename of a release number.
release_codename() {
  case "$1" in
    12) echo bookworm ;;
    13) echo trixie ;;
    *) return 1 ;;
  esac
}

# Log a line on stderr (stdout carries only the scripts' results).
log() {
  printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}

# Run a command as a named step and log how long it took: `timed NAME command args...`.
# Not meant for `if timed ...` or `timed ... || ...`: errexit must stay in force inside the step.
timed() {
  local name=$1 started
  shift
  started=$(date +%s.%N)
  "$@"
  log "step $name seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
}

# mmdebstrap options shared by both scripts. The host's apt is told not to check Valid-Until (the
# archive may be served from a snapshot); the chroot needs the same. The mirror is mmdebstrap's
# default for the suite (with -updates and -security added by mmdebstrap).
mmdebstrap_common_options() {
  printf '%s\n' \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --aptopt='Acquire::Retries "3"'
}

# Fail unless running as root (mmdebstrap's root mode, loop devices and mounts need it).
require_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "$1: must run as root (mmdebstrap, loop devices, mounts)" >&2
    exit 1
  fi
}

# The command line both build scripts take: `OUT_DIR [--release 13|12]`. Sets the globals
# out_dir, release and suite (the codename); prints the caller's `usage` and exits 2 on a
# mistake, exits 0 after --help.
parse_out_dir_and_release() {
  # shellcheck disable=SC2034 # out_dir, release and suite are the caller's
  out_dir=""
  release=13
  while (($# > 0)); do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --release)
        [[ $# -ge 2 ]] || { echo "--release needs a value" >&2; usage >&2; exit 2; }
        release=$2
        shift 2
        ;;
      --release=*) release=${1#*=}; shift ;;
      -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
      *)
        [[ -z "$out_dir" ]] || { echo "unexpected argument: $1" >&2; usage >&2; exit 2; }
        out_dir=$1
        shift
        ;;
    esac
  done
  [[ -n "$out_dir" ]] || { echo "OUT_DIR is required" >&2; usage >&2; exit 2; }
  # shellcheck disable=SC2034
  suite=$(release_codename "$release") || {
    echo "--release must be 13 or 12, not '$release'" >&2
    exit 2
  }
}
