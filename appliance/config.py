"""The configuration: one frozen dataclass per section, loaded from layered documents and
validated with every error reported at once. A leaf module: it imports nothing from the package.

Layers, later ones winning (DESIGN.md section 5): built-in defaults < /run/appliance/tuned.json
(autotune) < /etc/appliance/appliance.json < EC2 user-data < APPLIANCE_<SECTION>_<KEY> env.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

T = TypeVar("T")

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DirectoryOriginConfig:
    path: str = "samples"  # relative paths are relative to the process's working directory


@dataclass(frozen=True, slots=True)
class S3OriginConfig:
    bucket: str = ""
    prefix: str = ""  # prepended to every key ("photos/" → s3://bucket/photos/<key>)
    region: str = "us-east-1"
    endpoint_url: str | None = None  # for S3-compatible stores and tests; None = AWS


@dataclass(frozen=True, slots=True)
class HttpOriginConfig:
    base_url: str = ""  # "https://images.example.com/originals/"; keys are appended
    allowed_hosts: tuple[str, ...] = ()  # hosts that may be fetched (base_url's and redirects)
    allow_private: bool = False  # allow loopback, private and link-local addresses


@dataclass(frozen=True, slots=True)
class OriginConfig:
    kind: Literal["directory", "s3", "http"] = "directory"
    directory: DirectoryOriginConfig = field(default_factory=DirectoryOriginConfig)
    s3: S3OriginConfig = field(default_factory=S3OriginConfig)
    http: HttpOriginConfig = field(default_factory=HttpOriginConfig)
    connect_timeout: float = 3.0  # seconds
    read_timeout: float = 10.0  # seconds, for the whole body
    max_source_bytes: int = 50 * MiB


@dataclass(frozen=True, slots=True)
class CacheConfig:
    memory_bytes: int = 256 * MiB  # variants, per worker process
    original_memory_bytes: int = 128 * MiB  # originals, per worker process
    disk_path: str | None = None  # None: no disk tier
    disk_bytes: int = 10 * 1024 * MiB  # variants on disk, shared by the workers
    original_disk_bytes: int = 10 * 1024 * MiB


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1  # processes sharing the listening socket
    threads: int = 0  # transcode threads per worker; 0 = the CPUs we may run on (decision 0007)
    queue_depth: int = 16  # transcodes waiting per worker before 503
    admin_host: str = "127.0.0.1"  # purge and stats; loopback unless you mean it
    admin_port: int = 8081
    access_log: Literal["json", "combined", "off"] = "json"
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    drain_seconds: float = 20.0  # SIGTERM: how long in-flight requests may finish
    welcome_page: bool = False  # GET / shows how to configure the instance (unconfigured images)
    problems_file: str | None = None  # boot-time problems (bad user-data) that /ready reports


@dataclass(frozen=True, slots=True)
class ImagesConfig:
    jpeg_quality: int = 82
    webp_quality: int = 80
    avif_quality: int = 55
    auto_formats: tuple[str, ...] = ("avif", "webp")  # format=auto, best first
    pass_through_originals: bool = True  # no parameters: serve the original bytes
    strict_params: bool = False  # unknown parameters: 400 instead of ignored
    max_source_pixels: int = 50_000_000
    max_output_pixels: int = 16_777_216
    max_dimension: int = 8192


@dataclass(frozen=True, slots=True)
class SigningConfig:
    enabled: bool = False
    keys: tuple[str, ...] = ()  # the first signs; any verifies (rotation)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    ttl_ok: int = 31_536_000  # Cache-Control max-age for 200/304
    ttl_not_found: int = 60
    ttl_client_error: int = 60


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    origin: OriginConfig = field(default_factory=OriginConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    signing: SigningConfig = field(default_factory=SigningConfig)
    http: HttpConfig = field(default_factory=HttpConfig)

    def validate(self) -> list[str]:
        """Checks across fields that the types alone do not catch; every problem, not the first."""
        errors: list[str] = []
        s = self.server
        for name, port in (("server.port", s.port), ("server.admin_port", s.admin_port)):
            if not 0 <= port <= 65535:
                errors.append(f"{name}: {port} is not a TCP port")
        if s.workers < 1:
            errors.append(f"server.workers: must be at least 1, not {s.workers}")
        if s.threads < 0:
            errors.append(f"server.threads: must be 0 (one per CPU) or more, not {s.threads}")
        if s.queue_depth < 0:
            errors.append(f"server.queue_depth: must be 0 or more, not {s.queue_depth}")
        for name in ("jpeg_quality", "webp_quality", "avif_quality"):
            q = getattr(self.images, name)
            if not 1 <= q <= 100:
                errors.append(f"images.{name}: must be 1-100, not {q}")
        for fmt in self.images.auto_formats:
            if fmt not in ("avif", "webp"):
                errors.append(f"images.auto_formats: {fmt!r} is not avif or webp")
        o = self.origin
        if o.kind == "s3" and not o.s3.bucket:
            errors.append("origin.s3.bucket: required when origin.kind is s3")
        if o.kind == "http":
            if not o.http.base_url.startswith(("http://", "https://")):
                errors.append("origin.http.base_url: must be an http:// or https:// URL")
            else:
                host = (urlsplit(o.http.base_url).hostname or "").rstrip(".").lower()
                allowed = {h.rstrip(".").lower() for h in o.http.allowed_hosts}
                if host not in allowed:
                    errors.append(f"origin.http.allowed_hosts: must list base_url's host {host!r}")
        if o.connect_timeout <= 0 or o.read_timeout <= 0:
            errors.append("origin: timeouts must be positive")
        if self.signing.enabled and not self.signing.keys:
            errors.append("signing.keys: at least one key is needed when signing is enabled")
        for key in self.signing.keys:
            if len(key) < 16:
                errors.append("signing.keys: every key needs at least 16 characters")
                break
        return errors


class ConfigError(Exception):
    """Every problem found in the configuration, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merges two documents: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """``APPLIANCE_<SECTION>_<KEY>=value`` as a document layer. Values are read as JSON when
    they parse (numbers, booleans, lists), else as strings. Nested sections join with ``__``:
    ``APPLIANCE_ORIGIN_S3__BUCKET=photos``."""
    layer: dict[str, Any] = {}
    sections = {f.name for f in fields(Config)}
    for name, raw in environ.items():
        if not name.startswith("APPLIANCE_"):
            continue
        section, _, rest = name[len("APPLIANCE_") :].lower().partition("_")
        if section not in sections or not rest:
            continue
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        path = [section, *rest.split("__")]
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return layer


def read_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML file as a mapping (YAML is a superset of JSON)."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError([f"{path}: not valid JSON or YAML: {e}".splitlines()[0]]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError([f"{path}: the document must be a mapping of sections"])
    return document


def load(layers: Sequence[Mapping[str, Any]]) -> Config:
    """Builds the Config from document layers (later ones win) and validates it; raises
    ConfigError listing every problem."""
    document: dict[str, Any] = {}
    for layer in layers:
        document = merge(document, layer)
    errors: list[str] = []
    config = _build(Config, document, "", errors)
    if not errors:
        errors = config.validate()
    if errors:
        raise ConfigError(errors)
    return config


def load_files(paths: Sequence[Path], environ: Mapping[str, str] | None = None) -> Config:
    """The files that exist, in order, then the environment."""
    layers = [read_document(p) for p in paths if p.exists()]
    layers.append(env_layer(os.environ if environ is None else environ))
    return load(layers)


def _build(cls: type[T], document: Any, where: str, errors: list[str]) -> T:
    if not isinstance(document, Mapping):
        errors.append(f"{where or 'config'}: must be a mapping, not {type(document).__name__}")
        return cls()
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in document:
        if key not in known:
            errors.append(f"{where}{key}: unknown key")
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in document:
            values[f.name] = _convert(hints[f.name], document[f.name], f"{where}{f.name}", errors)
    try:
        return cls(**values)
    except TypeError as e:  # a value we could not convert, already reported
        errors.append(f"{where or 'config'}: {e}")
        return cls()


def _convert(hint: Any, value: Any, where: str, errors: list[str]) -> Any:
    origin = get_origin(hint)
    if is_dataclass(hint):
        return _build(hint, value, f"{where}.", errors)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in get_args(hint):
            allowed = ", ".join(repr(a) for a in get_args(hint))
            errors.append(f"{where}: must be one of {allowed}, not {value!r}")
        return value
    if origin in (Union, UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where, errors)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            errors.append(f"{where}: must be a list, not {value!r}")
            return ()
        item = get_args(hint)[0]
        return tuple(_convert(item, v, f"{where}[{i}]", errors) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            errors.append(f"{where}: must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{where}: must be an integer, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{where}: must be a number, not {value!r}")
            return value
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            errors.append(f"{where}: must be a string, not {value!r}")
        return value
    return value
