"""``appliance userdata``: EC2 user-data -> ``/run/appliance/userdata.json`` (a boot oneshot).

The user-data (IMDSv2, or ``--file``) is decoded, translated from Imagizer's key names where
they mean the same as ours (appliance.boot.imagizer), and validated over the layers below it
(defaults < tuned.json < /etc/appliance/appliance.json). Whatever the document says, the
command exits 0: a bad document must never stop the boot. docs/user-data.md is the user's
guide to all of this.

Decoding, outermost first and recursively (at most ``MAX_DEPTH`` levels): gzip (magic bytes);
base64 (only when the whole payload is base64 and what it holds decodes in turn); MIME (the
``application/x-appliance-config`` parts and the ``text/cloud-config`` parts with an
``appliance:`` key, merged in order; other parts are cloud-init's); ``#cloud-config`` (its
``appliance:`` mapping; none: no configuration for us); plain JSON or YAML (the document, or
its ``appliance:`` mapping when that is its only key). Empty user-data, shell scripts and
cloud-init's other ``#`` formats hold no configuration for us.

Outcomes, files written atomically: valid -> <run-dir>/userdata.json (``server.welcome_page``
false unless set) and <state-dir>/userdata.last-good.json, no problems.json; invalid -> a
``userdata.invalid key=<path> reason="..."`` line on stderr per problem, problems.json =
``{"user-data": [lines]}``, userdata.json = the last good copy or absent; none (404) -> neither
file; IMDS unreachable -> the last good copy put back in place.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email
import email.policy
import json
import logging
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.boot.imagizer import translate
from appliance.config import ConfigError, load, merge, read_document

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-appliance-config"  # our MIME part type (docs/user-data.md)
MAX_DEPTH = 4  # gzip in base64 in a MIME part in ...: enough, and no deeper
MAX_DECODED_BYTES = 1024 * 1024  # EC2 allows 16 KiB of user-data; a gzip bomb stops here
NOT_PARSED = "user-data: not JSON, YAML, #cloud-config, gzip, base64 or MIME"
_CLOUD_INIT_ONLY = ("#!", "#include", "#cloud-boothook", "#part-handler", "#upstart-job")
_BASE64 = re.compile(rb"[A-Za-z0-9+/=\s]+")

RUN_DIR = Path("/run/appliance")
STATE_DIR = Path("/var/lib/appliance")
CONFIG_FILE = Path("/etc/appliance/appliance.json")
SERVICE_GROUP = "appliance"  # may read userdata.json (it holds signing keys)


class DecodeError(Exception):
    """The user-data could not be decoded; the message is one problem line."""


# -- decoding --------------------------------------------------------------------------------


def decode(raw: bytes, depth: int = 0) -> dict[str, Any] | None:
    """The configuration document in the user-data, or None when it holds none for us.
    Raises DecodeError."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"{NOT_PARSED}: encodings nested more than {MAX_DEPTH} deep")
    if raw[:2] == b"\x1f\x8b":
        return decode(_gunzip(raw), depth + 1)
    stripped = raw.strip()
    if not stripped:
        return None
    decoded = _base64(stripped)
    if decoded is not None:
        try:
            return decode(decoded, depth + 1)
        except DecodeError:
            pass  # base64-looking text that is not base64 after all: read it as text
    if stripped[:13].lower().startswith((b"content-type:", b"mime-version:")):
        return _from_mime(raw, depth)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DecodeError(f"{NOT_PARSED}: not UTF-8 text") from None
    words = text.split(None, 1)
    if not words:
        return None
    header = words[0]
    if header == "#cloud-config":
        return _appliance_key(_yaml(text, "#cloud-config"), "#cloud-config")
    if header.startswith(_CLOUD_INIT_ONLY) or header == "#cloud-config-archive":
        log.info("userdata.not_ours format=%s", header[:20])
        return None
    return _from_document(text)


def _gunzip(raw: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, MAX_DECODED_BYTES + 1)
    except zlib.error as e:
        raise DecodeError(f"user-data: broken gzip: {e}") from None
    if len(out) > MAX_DECODED_BYTES:
        raise DecodeError(f"user-data: gzip expands to more than {MAX_DECODED_BYTES} bytes")
    if not inflater.eof:
        raise DecodeError("user-data: truncated gzip")
    return out


def _base64(stripped: bytes) -> bytes | None:
    if not _BASE64.fullmatch(stripped):
        return None
    compact = re.sub(rb"\s+", b"", stripped)
    if len(compact) % 4:
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        return None


def _from_mime(raw: bytes, depth: int) -> dict[str, Any] | None:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    found: list[dict[str, Any]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if kind == CONTENT_TYPE:
            document = decode(payload, depth + 1)
        elif kind == "text/cloud-config":
            try:
                text = payload.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise DecodeError(f"{NOT_PARSED}: a MIME part is not UTF-8 text") from None
            document = _appliance_key(_yaml(text, kind), kind)
        else:
            log.info("userdata.part_ignored content_type=%s", kind)
            continue
        if document is not None:
            found.append(document)
    if not found:
        return None
    merged: dict[str, Any] = {}
    for document in found:
        merged = merge(merged, document)
    return merged


def _yaml(text: str, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DecodeError(f"user-data: {what} is not valid YAML: {_one_line(e)}") from None


def _appliance_key(loaded: Any, what: str) -> dict[str, Any] | None:
    """The ``appliance:`` mapping of a cloud-config document; None when it has none."""
    if loaded is None:
        return None
    if not isinstance(loaded, dict):
        raise DecodeError(f"user-data: {what} must be a mapping, not {_kind(loaded)}")
    if "appliance" not in loaded:
        log.info("userdata.not_ours format=%s reason=no_appliance_key", what)
        return None
    section = loaded["appliance"]
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise DecodeError(f"appliance: must be a mapping of sections, not {_kind(section)}")
    return section


def _from_document(text: str) -> dict[str, Any] | None:
    try:
        loaded = json.loads(text)
    except ValueError:
        import yaml

        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise DecodeError(f"{NOT_PARSED}: {_one_line(e)}") from None
    if loaded is None:
        return None
    if not isinstance(loaded, dict):
        raise DecodeError(f"{NOT_PARSED}: {_kind(loaded)}, not a mapping of sections")
    if list(loaded) == ["appliance"] and isinstance(loaded["appliance"], dict):
        return loaded["appliance"]
    return loaded


def _kind(value: Any) -> str:
    names = {str: "a string", list: "a list", int: "a number", float: "a number", bool: "a bool"}
    return names.get(type(value), type(value).__name__)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


# -- validation ------------------------------------------------------------------------------


def check(
    document: Mapping[str, Any], base: Sequence[Path]
) -> tuple[dict[str, Any] | None, list[str]]:
    """Translates and validates a decoded document over the base layers (the files that
    exist). Returns our document (None when invalid) and every problem, one line each."""
    translated, errors, provenance = translate(document)
    server = translated.get("server")
    if server is None or (isinstance(server, dict) and "welcome_page" not in server):
        translated = merge(translated, {"server": {"welcome_page": False}})
    layers: list[Mapping[str, Any]] = []
    for path in base:
        if path.exists():
            try:
                layers.append(read_document(path))
            except ConfigError as e:
                errors.extend(e.errors)
    try:
        load([*layers, translated])
    except ConfigError as e:
        for line in e.errors:
            key = line.split(":", 1)[0]
            errors.append(f"{line} (set by {provenance[key]})" if key in provenance else line)
    return (None if errors else translated), errors


# -- the command -----------------------------------------------------------------------------


def register(commands: Subcommands) -> None:
    p = commands.add_parser(
        "userdata",
        help="EC2 user-data -> <run-dir>/userdata.json (boot, oneshot)",
        description="Reads the user-data from IMDSv2 (or --file), checks it and writes the "
        "config layer the service reads. Exits 0 whatever the document says.",
    )
    p.add_argument("--file", type=Path, help="read this document instead of IMDS")
    p.add_argument("--run-dir", type=Path, default=RUN_DIR, help=f"default: {RUN_DIR}")
    p.add_argument("--state-dir", type=Path, default=STATE_DIR, help=f"default: {STATE_DIR}")
    p.add_argument("--config", type=Path, default=CONFIG_FILE, help=f"default: {CONFIG_FILE}")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    run_dir: Path = args.run_dir
    files = _Files(run_dir, args.state_dir)
    if args.file is not None and not args.file.is_file():
        print(f"appliance userdata: --file {args.file}: no such file", file=sys.stderr)
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)  # an OSError here is the one failure (exit 1)
    if args.file is not None:
        raw: bytes | None = args.file.read_bytes()
        source = str(args.file)
    else:
        from appliance.boot.imds import Imds, ImdsUnavailable

        imds = Imds()
        source = imds.base_url
        try:
            raw = imds.user_data()
        except ImdsUnavailable as e:
            kept = files.restore_last_good()
            log.warning("userdata.imds_unavailable reason=%r kept=%s", str(e), kept)
            print(f"userdata: IMDS unreachable; running on {kept}")
            return 0
    try:
        document = None if raw is None else decode(raw)
    except DecodeError as e:
        return files.invalid([str(e)])
    if document is None:
        files.none()
        log.info("userdata.none source=%s", source)
        print("userdata: none; the instance runs unconfigured")
        return 0
    translated, errors = check(document, [run_dir / "tuned.json", args.config])
    if translated is None:
        return files.invalid(errors)
    files.valid(translated)
    log.info("userdata.applied source=%s sections=%s", source, ",".join(sorted(translated)))
    print(f"userdata: applied -> {files.current}")
    return 0


class _Files:
    """The files this command owns, and what each outcome does to them."""

    def __init__(self, run_dir: Path, state_dir: Path) -> None:
        self.current = run_dir / "userdata.json"
        self.problems = run_dir / "problems.json"
        self.last_good = state_dir / "userdata.last-good.json"

    def valid(self, document: Mapping[str, Any]) -> None:
        data = (json.dumps(document, indent=2) + "\n").encode()
        _write_atomic(self.current, data, secret=True)
        try:
            self.last_good.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.last_good, data, mode=0o600)
        except OSError as e:
            log.warning("userdata.last_good_unwritable path=%s error=%r", self.last_good, e)
        self.problems.unlink(missing_ok=True)

    def invalid(self, errors: Sequence[str]) -> int:
        for line in errors:
            key, _, reason = line.partition(": ")
            print(f"userdata.invalid key={key} reason={json.dumps(reason)}", file=sys.stderr)
        data = json.dumps({"user-data": list(errors)}, indent=2) + "\n"
        _write_atomic(self.problems, data.encode())
        kept = self.restore_last_good()
        print(f"userdata: {len(errors)} problem(s) in the user-data; running on {kept}")
        return 0

    def none(self) -> None:
        self.current.unlink(missing_ok=True)
        self.problems.unlink(missing_ok=True)

    def restore_last_good(self) -> str:
        """Puts the last good copy in place; says what the service will run on."""
        try:
            data = self.last_good.read_bytes()
            json.loads(data)
        except (OSError, ValueError):
            self.current.unlink(missing_ok=True)
            return "the defaults"
        _write_atomic(self.current, data, secret=True)
        return "the last good user-data"


def _write_atomic(path: Path, data: bytes, *, mode: int = 0o644, secret: bool = False) -> None:
    """Temp file in the same directory, then rename. A ``secret`` file (signing keys) is
    readable by the service's group only, when that group exists."""
    gid = -1
    if secret:
        import grp

        try:
            gid = grp.getgrnam(SERVICE_GROUP).gr_gid
            mode = 0o640
        except KeyError:
            pass  # no service user here (a developer's machine): the default mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if gid != -1:
            try:
                os.chown(tmp, -1, gid)
            except PermissionError:
                pass  # not root: the file stays ours, which is who runs the service then
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
