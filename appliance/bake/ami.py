"""AMI housekeeping with boto3: the post-build steps Packer 1.6.6 cannot do, listing, pruning.

After a build each AMI (and each regional copy) gets ``ImdsSupport=v2.0``, so instances launched
from it require IMDSv2 tokens, and the provenance tags on itself and its snapshots. Our AMIs are
the account's own images that carry ``appliance:version``; prune keeps the newest N per
architecture in a region and deregisters the rest, then deletes their snapshots.

The endpoint is configurable for moto: pass ``endpoint_url``, or set ``AWS_ENDPOINT_URL_EC2`` /
``AWS_ENDPOINT_URL``, which boto3 honours by itself. boto3 is imported inside the functions.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

VERSION_TAG = "appliance:version"
COMMIT_TAG = "appliance:git-commit"
RELEASE_TAG = "appliance:debian-release"
ARCH_TAG = "appliance:arch"
BUILT_AT_TAG = "appliance:built-at"
IMDS_V2 = "v2.0"

_ARCH_BY_EC2 = {"x86_64": "amd64", "arm64": "arm64"}
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the tags say about a build."""

    version: str
    git_commit: str
    debian_release: str
    arch: str
    built_at: str  # ISO 8601, UTC

    def tags(self) -> dict[str, str]:
        return {
            "Name": f"appliance {self.version} {self.arch}",
            VERSION_TAG: self.version,
            COMMIT_TAG: self.git_commit,
            RELEASE_TAG: self.debian_release,
            ARCH_TAG: self.arch,
            BUILT_AT_TAG: self.built_at,
        }


@dataclass(frozen=True, slots=True)
class Image:
    image_id: str
    region: str
    name: str
    arch: str
    version: str
    git_commit: str
    debian_release: str
    built_at: str
    created: str
    imds_support: str  # "v2.0", or "" where the API does not say
    state: str
    snapshots: tuple[str, ...]
    tags: Mapping[str, str]

    @property
    def age(self) -> datetime:
        """When it was built: the built-at tag (the same for every regional copy), else the
        image's CreationDate."""
        for stamp in (self.built_at, self.created):
            try:
                moment = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return _EPOCH


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def client(region: str, endpoint_url: str | None = None) -> Any:
    import boto3

    return boto3.client("ec2", region_name=region, endpoint_url=endpoint_url or None)


def default_region() -> str | None:
    """The region boto3 would use: $AWS_REGION, $AWS_DEFAULT_REGION or the config file."""
    import boto3

    region: str | None = boto3.session.Session().region_name
    return region


def image_from_description(description: Mapping[str, Any], region: str) -> Image:
    tags = {t["Key"]: t["Value"] for t in description.get("Tags", [])}
    snapshots = tuple(
        m["Ebs"]["SnapshotId"]
        for m in description.get("BlockDeviceMappings", [])
        if m.get("Ebs", {}).get("SnapshotId")
    )
    ec2_arch = description.get("Architecture") or ""
    return Image(
        image_id=description["ImageId"],
        region=region,
        name=description.get("Name", ""),
        arch=tags.get(ARCH_TAG) or _ARCH_BY_EC2.get(ec2_arch, ec2_arch or "unknown"),
        version=tags.get(VERSION_TAG, ""),
        git_commit=tags.get(COMMIT_TAG, ""),
        debian_release=tags.get(RELEASE_TAG, ""),
        built_at=tags.get(BUILT_AT_TAG, ""),
        created=description.get("CreationDate", ""),
        imds_support=description.get("ImdsSupport", ""),
        state=description.get("State", ""),
        snapshots=snapshots,
        tags=tags,
    )


def describe(ec2: Any, image_id: str) -> Image:
    images = ec2.describe_images(ImageIds=[image_id])["Images"]
    if not images:
        raise LookupError(f"no image {image_id}")
    return image_from_description(images[0], ec2.meta.region_name)


def finish_image(ec2: Any, image_id: str, provenance: Provenance, *, wait: bool = True) -> Image:
    """The post-build steps on one AMI: IMDSv2 required, then the tags on it and its snapshots.
    Safe to run again on the same AMI."""
    if wait:  # Packer waits for its AMIs too; this covers a copy still being made
        ec2.get_waiter("image_available").wait(
            ImageIds=[image_id], WaiterConfig={"Delay": 15, "MaxAttempts": 80}
        )
    image = describe(ec2, image_id)
    if image.imds_support != IMDS_V2:
        ec2.modify_image_attribute(ImageId=image_id, ImdsSupport={"Value": IMDS_V2})
    tags = provenance.tags()
    ec2.create_tags(
        Resources=[image_id, *image.snapshots],
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
    )
    log.info(
        "bake.ami.finished image=%s region=%s arch=%s imds=%s snapshots=%s",
        image_id,
        image.region,
        provenance.arch,
        IMDS_V2,
        ",".join(image.snapshots) or "-",
    )
    return describe(ec2, image_id)


def newest_first(images: Iterable[Image]) -> list[Image]:
    return sorted(images, key=lambda i: (i.age, i.image_id), reverse=True)


def list_images(ec2: Any) -> list[Image]:
    """This account's images in the client's region that carry appliance:version, newest
    first."""
    response = ec2.describe_images(
        Owners=["self"], Filters=[{"Name": "tag-key", "Values": [VERSION_TAG]}]
    )
    region = ec2.meta.region_name
    return newest_first(image_from_description(d, region) for d in response["Images"])


def plan_prune(images: Iterable[Image], keep: int) -> list[Image]:
    """The images to remove so that the newest ``keep`` of each architecture stay."""
    if keep < 1:
        raise ValueError("prune keeps at least 1 image per architecture")
    by_arch: dict[str, list[Image]] = defaultdict(list)
    for image in newest_first(images):
        by_arch[image.arch].append(image)
    doomed = [image for arch in sorted(by_arch) for image in by_arch[arch][keep:]]
    return newest_first(doomed)


@dataclass(frozen=True, slots=True)
class Removal:
    image: Image
    deleted_snapshots: tuple[str, ...]
    kept_snapshots: tuple[str, ...]  # still used by another image


def remove_image(ec2: Any, image: Image) -> Removal:
    """Deregisters the image, then deletes its snapshots (a snapshot another image still uses
    is left alone)."""
    from botocore.exceptions import ClientError

    ec2.deregister_image(ImageId=image.image_id)
    deleted, kept = [], []
    for snapshot in image.snapshots:
        try:
            ec2.delete_snapshot(SnapshotId=snapshot)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "InvalidSnapshot.InUse":
                raise
            kept.append(snapshot)
        else:
            deleted.append(snapshot)
    log.info(
        "bake.ami.pruned image=%s region=%s arch=%s snapshots=%s",
        image.image_id,
        image.region,
        image.arch,
        ",".join(deleted) or "-",
    )
    return Removal(image, tuple(deleted), tuple(kept))


def prune(ec2: Any, keep: int, *, dry_run: bool = True) -> tuple[list[Image], list[Removal]]:
    """Plans (and unless ``dry_run``, carries out) the removal of all but the newest ``keep``
    images per architecture. Returns the plan and what was removed."""
    doomed = plan_prune(list_images(ec2), keep)
    if dry_run:
        return doomed, []
    return doomed, [remove_image(ec2, image) for image in doomed]


def by_region(amis: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """(region, image id) pairs grouped by region, in order."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for region, image_id in amis:
        grouped[region].append(image_id)
    return dict(grouped)
