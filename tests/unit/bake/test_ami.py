"""The pure parts of AMI housekeeping: reading describe_images, the tags, newest-first order and
the prune plan. The boto3 calls themselves run against moto in tests/contract/test_bake_aws.py."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.bake.ami import (
    Image,
    Provenance,
    image_from_description,
    newest_first,
    plan_prune,
    utc_now,
)


def described(
    image_id: str,
    *,
    arch: str | None = "amd64",
    built_at: str | None = None,
    created: str = "2025-11-26T09:00:00.000Z",
    ec2_arch: str = "x86_64",
) -> dict[str, Any]:
    tags = [{"Key": "appliance:version", "Value": "0.1.0"}]
    if arch is not None:
        tags.append({"Key": "appliance:arch", "Value": arch})
    if built_at is not None:
        tags.append({"Key": "appliance:built-at", "Value": built_at})
    return {
        "ImageId": image_id,
        "Name": f"appliance-{image_id}",
        "Architecture": ec2_arch,
        "CreationDate": created,
        "State": "available",
        "ImdsSupport": "v2.0",
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": f"snap-{image_id[4:]}"}},
            {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
        ],
        "Tags": tags,
    }


def image(image_id: str, **kwargs: Any) -> Image:
    return image_from_description(described(image_id, **kwargs), "us-east-1")


def test_provenance_tags_name_every_fact() -> None:
    tags = Provenance("0.1.0", "abc123", "13", "arm64", "2025-11-26T09:00:00.000001Z").tags()
    assert tags == {
        "Name": "appliance 0.1.0 arm64",
        "appliance:version": "0.1.0",
        "appliance:git-commit": "abc123",
        "appliance:debian-release": "13",
        "appliance:arch": "arm64",
        "appliance:built-at": "2025-11-26T09:00:00.000001Z",
    }


def test_image_from_description_reads_tags_and_ebs_snapshots_only() -> None:
    got = image("ami-0a1", built_at="2025-11-26T10:00:00.5Z")
    assert (got.image_id, got.region, got.arch, got.version) == (
        "ami-0a1",
        "us-east-1",
        "amd64",
        "0.1.0",
    )
    assert got.snapshots == ("snap-0a1",)
    assert got.imds_support == "v2.0"
    assert got.git_commit == ""  # a tag that is absent reads as empty


@pytest.mark.parametrize(("ec2_arch", "expected"), [("x86_64", "amd64"), ("arm64", "arm64")])
def test_arch_falls_back_to_the_images_architecture(ec2_arch: str, expected: str) -> None:
    assert image("ami-1", arch=None, ec2_arch=ec2_arch).arch == expected


def test_built_at_orders_before_creation_date_and_the_id_breaks_ties() -> None:
    # Regional copies are created later than their source but carry its built-at tag.
    copy_of_old = image(
        "ami-2", built_at="2025-11-26T09:00:00.000001Z", created="2025-12-01T00:00:00.000Z"
    )
    new = image("ami-1", built_at="2025-11-26T09:00:00.000002Z")
    untagged = image("ami-3", created="2025-11-26T08:00:00.000Z")
    tie_a = image("ami-4", created="2025-11-26T07:00:00.000Z")
    tie_b = image("ami-5", created="2025-11-26T07:00:00.000Z")
    ordered = newest_first([tie_a, untagged, copy_of_old, tie_b, new])
    assert [i.image_id for i in ordered] == ["ami-1", "ami-2", "ami-3", "ami-5", "ami-4"]


def test_an_unreadable_date_sorts_last() -> None:
    broken = image("ami-9", built_at="yesterday", created="")
    dated = image("ami-1")
    assert newest_first([broken, dated])[-1] is broken


def test_prune_plan_keeps_the_newest_n_of_each_arch() -> None:
    amd64 = [image(f"ami-a{n}", built_at=f"2025-11-2{n}T00:00:00Z") for n in range(5)]
    arm64 = [image(f"ami-b{n}", arch="arm64", built_at=f"2025-11-2{n}T00:00:00Z") for n in range(2)]
    doomed = plan_prune(amd64 + arm64, keep=2)
    assert [i.image_id for i in doomed] == ["ami-a2", "ami-a1", "ami-a0"]
    assert plan_prune(amd64 + arm64, keep=5) == []
    assert [i.image_id for i in plan_prune(amd64 + arm64, keep=1)] == [
        "ami-a3",
        "ami-a2",
        "ami-a1",
        "ami-b0",  # the same day as ami-a0: the id breaks the tie
        "ami-a0",
    ]


def test_prune_plan_refuses_to_keep_nothing() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_prune([image("ami-1")], keep=0)


def test_utc_now_is_iso_8601_with_microseconds_and_z() -> None:
    stamp = utc_now()
    assert stamp.endswith("Z")
    assert len(stamp) == len("2025-11-26T09:00:00.000000Z")
    assert image("ami-1", built_at=stamp).age > image("ami-2", built_at="2025-01-01T00:00:00Z").age
