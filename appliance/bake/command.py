"""``appliance bake local|aws|list|prune``: Packer builds of the image, then AMI housekeeping.

``local`` builds the qcow2 that tests boot (source qemu.local); ``aws`` builds the AMIs (sources
amazon-ebs.amd64/arm64) and then requires IMDSv2 on each and tags it and its snapshots; ``list``
and ``prune`` manage this account's appliance AMIs in a region. See docs/baking.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.bake.ami import Image
    from appliance.bake.packer import BuildResult, PackerClient

ARCHES = ("amd64", "arm64")
RELEASES = ("12", "13")
_FLAGS_WITH_VIRTUALISATION = re.compile(r"^flags\s*:.*\b(vmx|svm)\b", re.MULTILINE)


def choose_accelerator(*, kvm_writable: bool, cpuinfo: str, kvm_pvm_loaded: bool) -> str:
    """``kvm`` only for hardware virtualisation we can use: /dev/kvm writable, vmx or svm among
    the CPU flags, and not the nested ``kvm_pvm`` module (its /dev/kvm hangs a stock Debian
    guest). Everything else gets ``tcg``, QEMU's emulator."""
    usable = kvm_writable and bool(_FLAGS_WITH_VIRTUALISATION.search(cpuinfo))
    return "kvm" if usable and not kvm_pvm_loaded else "tcg"


def detect_accelerator(root: Path = Path("/")) -> str:
    try:
        cpuinfo = (root / "proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    return choose_accelerator(
        kvm_writable=os.access(root / "dev/kvm", os.R_OK | os.W_OK),
        cpuinfo=cpuinfo,
        kvm_pvm_loaded=(root / "sys/module/kvm_pvm").exists(),
    )


def git_commit(directory: Path) -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _keep(text: str) -> int:
    try:
        keep = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--keep is a whole number") from None
    if keep < 1:
        raise argparse.ArgumentTypeError("--keep is at least 1")
    return keep


def register(commands: Any) -> None:
    bake = commands.add_parser(
        "bake", help="build the machine image with Packer; list and prune AMIs"
    )
    whats = bake.add_subparsers(dest="bake_command", required=True, metavar="WHAT")

    build = argparse.ArgumentParser(add_help=False)
    build.add_argument(
        "--template",
        type=Path,
        default=Path("packer"),
        help="the Packer template folder (default: packer); packer runs in its parent folder",
    )
    build.add_argument(
        "--packer",
        metavar="PATH",
        help="the packer executable (default: $APPLIANCE_PACKER, else packer on PATH)",
    )
    build.add_argument("--release", choices=RELEASES, default="13", help="Debian release")
    build.add_argument(
        "--var",
        type=_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another template variable (repeat); wins over the ones bake sets",
    )

    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument("--region", help="AWS region (default: boto3's, from AWS_REGION or config)")
    aws.add_argument(
        "--endpoint-url",
        default=None,
        help="EC2 endpoint, for moto (boto3 also reads AWS_ENDPOINT_URL_EC2/AWS_ENDPOINT_URL)",
    )

    p = whats.add_parser("local", parents=[build], help="build the local qcow2 (qemu.local)")
    p.add_argument(
        "--accelerator",
        choices=("auto", "tcg", "kvm"),
        default="auto",
        help="QEMU accelerator; auto = kvm only where hardware virtualisation works",
    )
    p.set_defaults(run=_guarded(_run_local))

    p = whats.add_parser("aws", parents=[build, aws], help="build the AMIs, then finish them")
    p.add_argument("--arch", choices=(*ARCHES, "all"), default="amd64")
    p.add_argument(
        "--copy-to",
        nargs="+",
        action="extend",
        default=[],
        metavar="REGION",
        help="also copy the AMI to these regions (each copy is finished too)",
    )
    p.set_defaults(run=_guarded(_run_aws))

    p = whats.add_parser("list", parents=[aws], help="this account's appliance AMIs, newest first")
    p.set_defaults(run=_guarded(_run_list))

    p = whats.add_parser(
        "prune", parents=[aws], help="deregister all but the newest AMIs per architecture"
    )
    p.add_argument("--keep", type=_keep, default=3, help="AMIs kept per architecture (3)")
    p.add_argument("--yes", action="store_true", help="do it (without: only say what would go)")
    p.set_defaults(run=_guarded(_run_prune))


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Packer and AWS failures become one line on stderr and exit status 1."""

    def guarded(args: argparse.Namespace) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        from appliance.bake.packer import PackerError

        try:
            return run(args)
        except (PackerError, BotoCoreError, ClientError, LookupError) as e:
            print(f"appliance bake {args.bake_command}: {e}", file=sys.stderr)
            return 1

    return guarded


def _progress(kind: str, text: str) -> None:
    print(text, file=sys.stderr if kind == "error" else sys.stdout, flush=True)


def _workdir(template: Path) -> Path:
    """Where packer runs: the template folder's parent (the repository root), so the relative
    paths in the template's variables mean the same wherever bake is started."""
    template = template.resolve()
    return template.parent if template.is_dir() else Path.cwd()


def _client(args: argparse.Namespace, only: list[str], vars: dict[str, str]) -> PackerClient:
    from appliance.bake.packer import open_packer

    client = open_packer(
        args.template,
        exec_path=args.packer,
        only=only,
        vars=vars | dict(args.var),
        cwd=_workdir(args.template),
    )
    print(f"appliance bake {args.bake_command}: packer {client.version()}, {', '.join(only)}")
    return client


def _common_vars(args: argparse.Namespace) -> dict[str, str]:
    from appliance import __version__

    return {
        "version": __version__,
        "git_commit": git_commit(_workdir(args.template)),
        "debian_release": args.release,
    }


def _run_local(args: argparse.Namespace) -> int:
    from appliance.bake.packer import PackerError

    accelerator = detect_accelerator() if args.accelerator == "auto" else args.accelerator
    vars = _common_vars(args) | {"accelerator": accelerator}
    client = _client(args, ["qemu.local"], vars)
    # -force: the output folder of the previous local build is replaced
    result = client.build(force=True, progress=_progress)
    workdir = _workdir(args.template)
    files = [f for artifact in result.artifacts for f in artifact.files]
    missing = [f for f in files if not (workdir / f).is_file()]
    if not files or missing:
        raise PackerError(f"the local image is missing: {', '.join(missing) or 'no files'}")
    for f in files:
        print(f"local image: {f}")
    return 0


def _run_aws(args: argparse.Namespace) -> int:
    from appliance.bake import ami
    from appliance.bake.packer import PackerBuildError

    arches = list(ARCHES) if args.arch == "all" else [args.arch]
    vars = _common_vars(args)
    region = args.region or ami.default_region()
    if region:
        vars["aws_region"] = region
    if args.copy_to:
        vars["ami_regions"] = json.dumps(args.copy_to)
    client = _client(args, [f"amazon-ebs.{arch}" for arch in arches], vars)
    failure: PackerBuildError | None = None
    try:
        result = client.build(progress=_progress)
    except PackerBuildError as e:  # finish whatever AMIs the other sources did make
        failure, result = e, e.result
    finished = _finish_amis(result, client.vars, args.endpoint_url)
    if failure is not None:
        print(f"appliance bake aws: {failure}", file=sys.stderr)
        return 1
    if not finished:
        print("appliance bake aws: packer reported no AMI", file=sys.stderr)
        return 1
    return 0


def _finish_amis(result: BuildResult, vars: dict[str, str], endpoint_url: str | None) -> int:
    from appliance.bake import ami

    built_at = ami.utc_now()
    clients: dict[str, Any] = {}
    for artifact, made in result.amis():
        arch = artifact.build.partition(".")[2]
        provenance = ami.Provenance(
            version=vars["version"],
            git_commit=vars["git_commit"],
            debian_release=vars["debian_release"],
            arch=arch if arch in ARCHES else "unknown",
            built_at=built_at,
        )
        if made.region not in clients:
            clients[made.region] = ami.client(made.region, endpoint_url)
        image = ami.finish_image(clients[made.region], made.image_id, provenance)
        print(
            f"{provenance.arch} {made.region} {made.image_id}: IMDSv2 required, tagged with "
            f"its {len(image.snapshots)} snapshot(s)"
        )
    return len(result.amis())


def _region(args: argparse.Namespace) -> str:
    from appliance.bake import ami

    region = args.region or ami.default_region()
    if not region:
        raise LookupError("no region: pass --region or set AWS_REGION")
    return str(region)


def _describe(image: Image) -> str:
    built = (image.built_at or image.created)[:19]
    return (
        f"{image.image_id:<21}  {image.arch:<5}  {image.version or '-':<10}  "
        f"{image.git_commit[:12] or '-':<12}  {image.debian_release or '-':<6}  {built:<19}  "
        f"{image.imds_support or '-':<4}  {image.name}"
    )


def _run_list(args: argparse.Namespace) -> int:
    from appliance.bake import ami

    region = _region(args)
    images = ami.list_images(ami.client(region, args.endpoint_url))
    if not images:
        print(f"no appliance AMIs in {region}")
        return 0
    print(
        f"{'IMAGE':<21}  {'ARCH':<5}  {'VERSION':<10}  {'COMMIT':<12}  {'DEBIAN':<6}  "
        f"{'BUILT (UTC)':<19}  {'IMDS':<4}  NAME"
    )
    for image in images:
        print(_describe(image))
    return 0


def _run_prune(args: argparse.Namespace) -> int:
    from appliance.bake import ami

    region = _region(args)
    doomed, removed = ami.prune(
        ami.client(region, args.endpoint_url), args.keep, dry_run=not args.yes
    )
    if not doomed:
        print(f"nothing to prune in {region}: at most {args.keep} AMI(s) per architecture")
        return 0
    if not args.yes:
        for image in doomed:
            snapshots = ", ".join(image.snapshots) or "no snapshots"
            print(f"would deregister {_describe(image)} and delete {snapshots}")
        print(f"dry run: {len(doomed)} AMI(s) would go from {region}; --yes removes them")
        return 0
    for removal in removed:
        deleted = ", ".join(removal.deleted_snapshots) or "no snapshots"
        line = f"deregistered {removal.image.image_id}, deleted {deleted}"
        if removal.kept_snapshots:
            line += f"; kept {', '.join(removal.kept_snapshots)} (in use by another image)"
        print(line)
    print(f"pruned {len(removed)} AMI(s) from {region}, kept the newest {args.keep} per arch")
    return 0
