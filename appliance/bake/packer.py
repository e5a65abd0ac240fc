"""python-packer, made to drive Packer 1.6: streamed ``-machine-readable`` builds.

python-packer (``import packer``) is the wrapper the customer named. Against Packer 1.6.6 and
Python 3.11 its ``build()`` passes ``-parallel=true``, which Packer rejects, its streaming
callbacks crash, its ``validate()`` crashes on an invalid template and its constructor refuses
an HCL2 template folder (docs/decisions/0009-python-packer-wrapper.md). So :func:`open_packer`
returns a subclass that keeps its constructor arguments, ``version()`` and its way of turning
only/except/vars into flags, and replaces ``build()`` and ``validate()`` with our own subprocess
calls. The output parser and the build loop are plain functions, testable without python-packer.

Only the standard library is imported at module level; python-packer (and the ``sh`` package it
needs) is imported when a client is made.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

PACKER_ENV = "APPLIANCE_PACKER"  # the packer executable, when not given as an option

# Packer escapes these inside each field of a machine-readable line.
_ESCAPES = (("%!(PACKER_COMMA)", ","), ("\\n", "\n"), ("\\r", "\r"))
_AMI_PART = re.compile(r"^(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):(?P<image>ami-[0-9a-f]+)$")

# progress(kind, text): kind is "say", "message" or "error" (Packer's ui kinds), or "raw" for a
# line that is not machine-readable (usage text, a Go panic).
Progress = Callable[[str, str], None]


class PackerError(Exception):
    """Packer could not be run, or a run failed or built nothing."""


class PackerBuildError(PackerError):
    """A build that exited non-zero or left artifacts missing. ``result`` holds what it did
    produce, so an AMI that one source finished can still get its post-build steps."""

    def __init__(self, message: str, result: BuildResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class Message:
    """One line of ``packer -machine-readable`` output: ``timestamp,target,type,data...``."""

    timestamp: int
    target: str
    type: str
    data: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AmiId:
    region: str
    image_id: str


@dataclass(frozen=True, slots=True)
class Artifact:
    """What one build produced: for amazon-ebs an id ``region:ami-x[,region2:ami-y]``, for qemu
    the files of the output directory."""

    build: str  # the build's name as -only takes it: "amazon-ebs.amd64", "qemu.local"
    builder_id: str  # "mitchellh.amazonebs", "transcend.qemu", ...
    id: str
    description: str
    files: tuple[str, ...]

    @property
    def amis(self) -> tuple[AmiId, ...]:
        return parse_ami_ids(self.id)


@dataclass(frozen=True, slots=True)
class BuildResult:
    artifacts: tuple[Artifact, ...]
    errors: tuple[str, ...]  # Packer's per-build error lines, "amazon-ebs.arm64: ..."
    exit_code: int
    seconds: float

    def amis(self) -> tuple[tuple[Artifact, AmiId], ...]:
        """Every AMI made, each once (the manifest post-processor repeats an artifact)."""
        seen: dict[AmiId, Artifact] = {}
        for artifact in self.artifacts:
            for ami in artifact.amis:
                seen.setdefault(ami, artifact)
        return tuple((artifact, ami) for ami, artifact in seen.items())


@dataclass(frozen=True, slots=True)
class Validation:
    succeeded: bool
    output: str


def _unescape(value: str) -> str:
    for escaped, plain in _ESCAPES:
        value = value.replace(escaped, plain)
    return value


def parse_line(line: str) -> Message | None:
    """A machine-readable line, or None for anything else Packer prints (usage, panics)."""
    parts = line.rstrip("\r\n").split(",")
    if len(parts) < 3 or not parts[0].isdigit() or not parts[2]:
        return None
    return Message(
        timestamp=int(parts[0]),
        target=_unescape(parts[1]),
        type=parts[2],
        data=tuple(_unescape(p) for p in parts[3:]),
    )


def parse_ami_ids(artifact_id: str) -> tuple[AmiId, ...]:
    """``"eu-west-1:ami-1,us-east-1:ami-2"`` -> the AMIs; () for an id that is not one."""
    amis = []
    for part in artifact_id.split(","):
        match = _AMI_PART.match(part.strip())
        if match is None:
            return ()
        amis.append(AmiId(match["region"], match["image"]))
    return tuple(amis)


@dataclass(slots=True)
class ArtifactCollector:
    """Assembles ``artifact`` lines (``target,artifact,INDEX,KEY,VALUE...``) into Artifacts."""

    artifacts: list[Artifact] = field(default_factory=list)
    _open: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def add(self, message: Message) -> None:
        if message.type != "artifact" or len(message.data) < 2 or not message.data[0].isdigit():
            return
        index, key, values = int(message.data[0]), message.data[1], message.data[2:]
        record = self._open.setdefault((message.target, index), {"files": {}})
        if key == "end":
            del self._open[(message.target, index)]
            if record.get("nil"):
                return
            artifact = Artifact(
                build=message.target,
                builder_id=record.get("builder-id", ""),
                id=record.get("id", ""),
                description=record.get("string", ""),
                files=tuple(path for _, path in sorted(record["files"].items())),
            )
            if artifact not in self.artifacts:  # the manifest post-processor repeats it
                self.artifacts.append(artifact)
        elif key == "nil":
            record["nil"] = True
        elif key == "file" and len(values) >= 2 and values[0].isdigit():
            record["files"][int(values[0])] = values[1]
        elif key in ("builder-id", "id", "string"):
            record[key] = values[0] if values else ""


def parse_output(lines: Iterable[str]) -> tuple[tuple[Artifact, ...], tuple[str, ...]]:
    """The artifacts and build errors in a whole machine-readable transcript."""
    collector = ArtifactCollector()
    errors = []
    for line in lines:
        message = parse_line(line)
        if message is None:
            continue
        collector.add(message)
        if message.type == "error" and message.target and message.data:
            errors.append(f"{message.target}: {message.data[0]}")
    return tuple(collector.artifacts), tuple(errors)


def resolve_executable(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The packer to run: the option, else $APPLIANCE_PACKER, else ``packer`` on PATH."""
    env = os.environ if env is None else env
    wanted = explicit or env.get(PACKER_ENV) or "packer"
    found = shutil.which(wanted)
    if found is None:
        raise PackerError(
            f"packer not found: {wanted!r} (install Debian's package `packer`, or name the "
            f"executable with --packer or ${PACKER_ENV})"
        )
    return found


def _child_env() -> dict[str, str]:
    # No version check or security bulletin fetch from HashiCorp on every run.
    return {**os.environ, "CHECKPOINT_DISABLE": "1"}


def run_build(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    expected: Sequence[str] = (),
    progress: Progress | None = None,
) -> BuildResult:
    """Runs ``packer build -machine-readable ...`` and streams its output line by line.

    Raises PackerBuildError when packer exits non-zero, when it built nothing (Packer 1.6.6
    exits 0 and builds nothing for an ``-only`` name that matches no source), or when a build
    named in ``expected`` left no artifact. On Ctrl-C, packer gets SIGINT and is waited for:
    it terminates the instances and deletes the key pairs it made.
    """
    started = time.monotonic()
    collector = ArtifactCollector()
    errors: list[str] = []
    # for the error message: Packer's ui errors and the lines that were not machine-readable
    complaints: list[str] = []
    log.info("bake.packer.start argv=%s", " ".join(argv))

    def handle(line: str) -> None:
        message = parse_line(line)
        if message is None:
            text = line.rstrip("\r\n")
            if text:
                complaints.append(text)
                del complaints[:-20]
                if progress:
                    progress("raw", text)
            return
        if message.type == "ui" and len(message.data) >= 2:
            if message.data[0] == "error":
                complaints.extend(x for x in message.data[1].splitlines()[:1] if x.strip())
            if progress:
                progress(message.data[0], message.data[1])
        elif message.type == "error" and message.target and message.data:
            errors.append(f"{message.target}: {message.data[0]}")
        collector.add(message)

    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
    except OSError as e:
        raise PackerError(f"cannot run {argv[0]}: {e.strerror}") from e
    assert proc.stdout is not None
    interrupted = False
    with proc:
        while True:
            try:
                for line in proc.stdout:
                    handle(line)
                break
            except KeyboardInterrupt:
                interrupted = True
                proc.send_signal(signal.SIGINT)  # then keep reading while packer cleans up
        exit_code = proc.wait()
    result = BuildResult(
        artifacts=tuple(collector.artifacts),
        errors=tuple(errors),
        exit_code=exit_code,
        seconds=time.monotonic() - started,
    )
    log.info(
        "bake.packer.exit code=%d artifacts=%d seconds=%.1f",
        exit_code,
        len(result.artifacts),
        result.seconds,
    )
    if interrupted:
        raise PackerBuildError("interrupted: packer stopped after cleaning up", result)
    if exit_code != 0:
        why = "; ".join(errors) or " | ".join(complaints[-3:]) or "no error message"
        raise PackerBuildError(f"packer exited with status {exit_code}: {why}", result)
    if not result.artifacts:
        raise PackerBuildError(
            "packer exited 0 but built nothing (is every -only name a source as type.name, "
            f"like qemu.local? {', '.join(expected) or 'no -only given'})",
            result,
        )
    built = {a.build for a in result.artifacts}
    missing = [name for name in expected if "*" not in name and name not in built]
    if missing:
        raise PackerBuildError(f"packer built no artifact for {', '.join(missing)}", result)
    return result


class PackerClient(Protocol):
    """python-packer's ``Packer`` as we use it."""

    packerfile: str
    exc: list[str]
    only: list[str]
    vars: dict[str, str]

    def arguments(self) -> list[str]: ...
    def build(self, *, force: bool = ..., progress: Progress | None = ...) -> BuildResult: ...
    def validate(self, *, syntax_only: bool = ...) -> Validation: ...
    def version(self) -> str: ...


@functools.cache
def _client_class() -> type[Any]:
    """python-packer's Packer with build() and validate() replaced; made on first use so that
    importing this module does not import python-packer and ``sh``."""
    # importlib, not `import packer`: a type checker run from the repository root would take
    # the packer/ template folder for that module.
    try:
        python_packer: Any = importlib.import_module("packer")
    except ImportError:
        python_packer = None
    if not hasattr(python_packer, "Packer"):
        raise PackerError("python-packer is not installed: pip install 'appliance[bake]'")

    class _Arguments:
        """Stands in for the ``sh`` command that python-packer bakes flags onto."""

        def __init__(self) -> None:
            self.argv: list[str] = []

        def bake(self, option: str) -> _Arguments:
            self.argv.append(option)
            return self

    class AppliancePacker(python_packer.Packer):  # type: ignore[misc]
        def __init__(
            self,
            template: Path,
            *,
            exec_path: str,
            only: Sequence[str] = (),
            exc: Sequence[str] = (),
            vars: Mapping[str, str] | None = None,
            var_file: str | None = None,
            cwd: Path | None = None,
        ) -> None:
            if not template.exists():
                raise PackerError(f"no Packer template at {template}")
            # python-packer's own __init__ insists on a file; an HCL2 template is a folder of
            # .pkr.hcl files. The rest is what it sets up.
            self.packerfile = str(template)
            self.var_file = var_file
            self.exc = self._validate_argtype(list(exc), list)
            self.only = self._validate_argtype(list(only), list)
            self.vars = self._validate_argtype(dict(vars or {}), dict)
            self.exec_path = exec_path
            self.cwd = cwd
            self.packer = python_packer.sh.Command(exec_path).bake(_env=_child_env())

        def arguments(self) -> list[str]:
            """-except/-only, -var k=v ..., -var-file, as python-packer spells them."""
            collected = _Arguments()
            self.packer_cmd = collected
            try:
                self._append_base_arguments()
            except python_packer.PackerException as e:
                raise PackerError(str(e)) from e
            return collected.argv

        def build(self, *, force: bool = False, progress: Progress | None = None) -> BuildResult:
            argv = [self.exec_path, "build", "-machine-readable"]
            argv += ["-force"] if force else []
            argv += [*self.arguments(), self.packerfile]
            return run_build(argv, cwd=self.cwd, expected=self.only, progress=progress)

        def validate(self, *, syntax_only: bool = False) -> Validation:
            argv = [self.exec_path, "validate", *(["-syntax-only"] if syntax_only else [])]
            argv += [*self.arguments(), self.packerfile]
            done = subprocess.run(
                argv, cwd=self.cwd, env=_child_env(), capture_output=True, text=True, check=False
            )
            return Validation(done.returncode == 0, (done.stdout + done.stderr).strip())

        def version(self) -> str:
            # python-packer keeps what follows "v" in "Packer v1.6.6"; an "out of date" notice
            # can follow on the next lines
            found = str(super().version()).split()
            return found[0] if found else "unknown"

    return AppliancePacker


def open_packer(
    template: Path,
    *,
    exec_path: str | None = None,
    only: Sequence[str] = (),
    exc: Sequence[str] = (),
    vars: Mapping[str, str] | None = None,
    var_file: str | None = None,
    cwd: Path | None = None,
) -> PackerClient:
    """A python-packer client for ``template`` (a .pkr.hcl file or a folder of them).
    ``exec_path``: see :func:`resolve_executable`. ``cwd``: where packer runs, which is what the
    template's relative paths are relative to (default: this process's directory)."""
    client: PackerClient = _client_class()(
        template,
        exec_path=resolve_executable(exec_path),
        only=only,
        exc=exc,
        vars=vars,
        var_file=var_file,
        cwd=cwd,
    )
    return client
