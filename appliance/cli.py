"""The ``appliance`` command. ``main(argv) -> int`` so tests call it without a subprocess."""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance import __version__
from appliance.config import Config, ConfigError
from appliance.errors import TranscodeError

if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]


def _rect(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("rect is x,y,w,h")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError("rect is four integers x,y,w,h") from None
    return x, y, w, h


def _colour(text: str) -> tuple[int, ...]:
    hexdigits = text.lstrip("#")
    if len(hexdigits) not in (6, 8):
        raise argparse.ArgumentTypeError("background is rrggbb or rrggbbaa")
    try:
        return tuple(int(hexdigits[i : i + 2], 16) for i in range(0, len(hexdigits), 2))
    except ValueError:
        raise argparse.ArgumentTypeError("background is hexadecimal rrggbb[aa]") from None


def _add_transcode(commands: Subcommands) -> None:
    p = commands.add_parser("transcode", help="resize and re-encode one image file")
    p.add_argument("input", type=Path, help="source image (JPEG, PNG, WebP, GIF)")
    p.add_argument("output", type=Path, help="where to write the result")
    p.add_argument("--width", "-w", type=int)
    p.add_argument("--height", "-H", type=int)
    p.add_argument("--fit", choices=["inside", "cover", "pad", "stretch"], default="inside")
    p.add_argument(
        "--gravity", choices=["center", "top", "bottom", "left", "right"], default="center"
    )
    p.add_argument("--rect", type=_rect, help="source crop x,y,w,h before resizing")
    p.add_argument("--upscale", action="store_true", help="allow enlarging")
    p.add_argument(
        "--format",
        "-f",
        choices=["jpeg", "png", "webp", "avif"],
        help="output format (default: the output file's suffix, else the source's)",
    )
    p.add_argument("--quality", "-q", type=int)
    p.add_argument("--progressive", action="store_true")
    p.add_argument("--chroma", choices=["420", "444"])
    p.add_argument("--lossless", action="store_true")
    p.add_argument("--effort", type=int)
    p.add_argument("--icc", choices=["keep", "srgb", "strip"], default="keep")
    p.add_argument("--no-autorotate", dest="autorotate", action="store_false")
    p.add_argument(
        "--background",
        type=_colour,
        default=(255, 255, 255),
        help="pad / flatten colour, rrggbb[aa]",
    )
    p.set_defaults(run=_run_transcode)


_SUFFIX_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp", ".avif": "avif"}


def _run_transcode(args: argparse.Namespace) -> int:
    from appliance import native

    fmt: Any = args.format or _SUFFIX_FORMATS.get(args.output.suffix.lower())
    data = args.input.read_bytes()
    result = native.transcode_image(
        data,
        width=args.width,
        height=args.height,
        fit=args.fit,
        gravity=args.gravity,
        rect=args.rect,
        upscale=args.upscale,
        format=fmt,
        quality=args.quality,
        progressive=args.progressive,
        chroma=args.chroma,
        lossless=args.lossless,
        effort=args.effort,
        icc=args.icc,
        autorotate=args.autorotate,
        background=args.background,
    )
    args.output.write_bytes(result.data)
    t = result.timings
    print(
        f"{args.input.name}: {len(data):,} bytes -> {args.output.name}: {result.format} "
        f"{result.width}x{result.height}, {len(result.data):,} bytes "
        f"(decode {t['decode'] * 1e3:.1f} ms, resize {t['resize'] * 1e3:.1f} ms, "
        f"encode {t['encode'] * 1e3:.1f} ms)"
    )
    return 0


def _add_probe(commands: Subcommands) -> None:
    p = commands.add_parser("probe", help="print what an image's header says")
    p.add_argument("input", type=Path, nargs="+")
    p.set_defaults(run=_run_probe)


def _run_probe(args: argparse.Namespace) -> int:
    from appliance import native

    for path in args.input:
        info = native.probe(path.read_bytes())
        print(
            f"{path.name}: {info.format} {info.width}x{info.height} "
            f"orientation={info.orientation} subsampling={info.subsampling or '-'} "
            f"progressive={int(info.progressive)} alpha={int(info.has_alpha)} "
            f"icc={int(info.has_icc)}"
        )
    return 0


# The layers of DESIGN.md section 5 as the image lays them out (the boot units write /run).
DEFAULT_CONFIG_FILES = (
    Path("/run/appliance/tuned.json"),
    Path("/etc/appliance/appliance.json"),
    Path("/run/appliance/userdata.json"),
)


def _add_serve(commands: Subcommands) -> None:
    p = commands.add_parser("serve", help="run the image server")
    p.add_argument(
        "--config",
        "-c",
        type=Path,
        action="append",
        default=[],
        help="config file (JSON or YAML); repeat to layer; default: "
        + ", ".join(str(f) for f in DEFAULT_CONFIG_FILES),
    )
    p.add_argument("--host", help="listen address (overrides server.host)")
    p.add_argument("--port", type=int, help="listen port (overrides server.port; 0 = any)")
    p.add_argument("--origin-dir", type=Path, help="serve originals from this directory")
    p.add_argument("--workers", type=int, help="worker processes (overrides server.workers)")
    p.set_defaults(run=_run_serve)


def _load_config(args: argparse.Namespace) -> Config:
    from appliance.config import env_layer, load, read_document

    files = args.config or [f for f in DEFAULT_CONFIG_FILES if f.exists()]
    layers: list[dict[str, Any]] = [read_document(f) for f in files]
    layers.append(env_layer(os.environ))
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None) is not None:
        overrides.setdefault("server", {})["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides.setdefault("server", {})["port"] = args.port
    if getattr(args, "workers", None) is not None:
        overrides.setdefault("server", {})["workers"] = args.workers
    if getattr(args, "origin_dir", None) is not None:
        overrides["origin"] = {"kind": "directory", "directory": {"path": str(args.origin_dir)}}
    layers.append(overrides)
    return load(layers)


def _run_serve(args: argparse.Namespace) -> int:
    import logging

    from appliance.server import app, handlers, workers

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    config = _load_config(args)
    for problem in handlers.boot_problems(config.server.problems_file):
        logging.getLogger("appliance.server").warning("config.problem %s", problem)
    sock = workers.systemd_socket() or workers.bind_socket(config.server.host, config.server.port)
    admin = workers.bind_socket(config.server.admin_host, config.server.admin_port)
    host, port = sock.getsockname()[:2]
    admin_port = admin.getsockname()[1]
    print(
        f"appliance: serving on http://{host}:{port}/ (admin port {admin_port}) with "
        f"{config.server.workers} worker(s), origin {config.origin.kind}",
        flush=True,
    )
    # Always supervised, one worker or many: SIGHUP reloads and a crashed worker is restarted.
    current = [config]  # SIGHUP replaces it; workers forked afterwards see the new one

    def reload() -> int:
        current[0] = _load_config(args)
        return current[0].server.workers

    with tempfile.TemporaryDirectory(prefix="appliance-peers-") as peers:

        def run_worker(s: socket.socket) -> int:
            workers.exit_on_parent_death()
            return app.run_worker(current[0], s, admin, Path(peers))

        return workers.Supervisor(sock, config.server.workers, run_worker, reload).run()


def _add_check_config(commands: Subcommands) -> None:
    p = commands.add_parser("check-config", help="validate config files; print every problem")
    p.add_argument("config", type=Path, nargs="+")
    p.set_defaults(run=_run_check_config)


def _run_check_config(args: argparse.Namespace) -> int:
    from appliance.config import load, read_document

    load([read_document(f) for f in args.config])
    print("config ok")
    return 0


# Modules that add their own subcommands through ``register(commands)``. They import only the
# standard library at module level, so ``appliance serve`` does not pay for boto3 or packer.
COMMAND_MODULES = (
    "appliance.boot.disks",  # appliance disks: the cache disk (boot, oneshot)
    "appliance.boot.autotune",  # appliance autotune: facts -> plan -> tuned.json (boot, oneshot)
    "appliance.boot.userdata",  # appliance userdata: EC2 user-data -> config layer (boot, oneshot)
    "appliance.bake.command",  # appliance bake: Packer builds and AMI housekeeping
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_transcode(commands)
    _add_probe(commands)
    _add_serve(commands)
    _add_check_config(commands)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as e:
        for error in e.errors:
            print(f"appliance {args.command}: {error}", file=sys.stderr)
        return 2
    except (TranscodeError, ValueError) as e:
        print(f"appliance {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"appliance {args.command}: {e.strerror}: {e.filename}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
