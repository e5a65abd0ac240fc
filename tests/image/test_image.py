"""The baked image, booted under QEMU and checked over SSH with testinfra.

First boot (`configured`): 1 vCPU, 1 GiB, user-data naming an S3 bucket on moto's server on the
host, signing on, an instance role. Second boot (`broken`): 2 vCPUs, 2 GiB, a user-data
document with a bad key. The tests of the first boot come first: the second boot stops it.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import time
import urllib.parse
from typing import Any

import pytest

from appliance.request.signature import sign_url

from .conftest import SIGNING_KEY, Boot, attach_role

UNITS = ("appliance-disks.service", "appliance-autotune.service", "appliance.service")


def fetch(boot: Boot, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", boot.vm.http_port, timeout=120)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def image_size(body: bytes) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    with Image.open(io.BytesIO(body)) as im:
        return str(im.format), im.size


def started_at(boot: Boot, unit: str) -> int:
    """When the unit became active (or finished, for oneshots), in µs since boot."""
    value = boot.host.run(
        f"systemctl show -p ExecMainExitTimestampMonotonic -p "
        f"ActiveEnterTimestampMonotonic --value {unit}"
    ).stdout.split()
    return int(value[-1])


# --- first boot: configured ---------------------------------------------------------------


def test_the_units_ran_in_order_and_the_service_is_active(configured: Boot) -> None:
    host = configured.host
    for unit in UNITS:
        assert host.service(unit).is_enabled, unit
    assert host.service("appliance.service").is_running
    assert host.socket("tcp://0.0.0.0:80").is_listening or host.socket("tcp://:::80").is_listening
    for oneshot in UNITS[:2]:
        result = host.run(f"systemctl show -p Result --value {oneshot}").stdout.strip()
        assert result == "success", (oneshot, host.run(f"journalctl -u {oneshot}").stdout)
    disks, autotune, service = (started_at(configured, u) for u in UNITS)
    assert 0 < disks <= autotune <= service


def test_the_service_runs_as_its_own_user_with_the_hardening_in_place(configured: Boot) -> None:
    host = configured.host
    pid = host.run("systemctl show -p MainPID --value appliance.service").stdout.strip()
    status = host.file(f"/proc/{pid}/status").content_string
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uid = fields["Uid"].split()[0]
    assert host.user("appliance").uid == int(uid) and int(uid) != 0
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"
    assert host.user("appliance").shell in ("/usr/sbin/nologin", "/bin/false")
    exposure = host.run("systemd-analyze security appliance.service --no-pager").stdout
    overall = float(re.search(r"exposure level for \S+: ([\d.]+)", exposure)[1])  # type: ignore[index]
    assert overall <= 2.0, exposure
    # ProtectSystem=strict: the service cannot write to /opt, /etc or /usr
    mounts = host.file(f"/proc/{pid}/mountinfo").content_string
    assert any(line.split()[4] == "/usr" and " ro" in line for line in mounts.splitlines()) or (
        any(line.split()[4] == "/" and "ro," in line.split()[5] for line in mounts.splitlines())
    )


def test_tuned_json_matches_this_vm(configured: Boot) -> None:
    assert_tuned_matches(configured, cpus=1)


def test_the_user_data_is_in_force(configured: Boot) -> None:
    userdata = configured.json("/run/appliance/userdata.json")
    assert userdata["origin"]["kind"] == "s3"
    assert userdata["signing"]["keys"] == [SIGNING_KEY]
    assert not configured.host.file("/run/appliance/problems.json").exists
    assert fetch(configured, "/")[0] != 200  # the welcome page is off once configured
    status, body = fetch(configured, "/ready")  # no instance role yet
    assert status == 503 and b"attach an instance role" in body, body


def test_a_role_attached_later_is_picked_up_without_a_restart(
    configured: Boot, imds: Any, s3: Any
) -> None:
    pid = configured.host.run("systemctl show -p MainPID --value appliance.service").stdout
    attach_role(imds, s3)
    deadline = time.monotonic() + 120  # the origin asks the chain again every 30 s
    while (status := fetch(configured, "/ready")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(2)
    assert status == 200
    assert configured.host.run("systemctl show -p MainPID --value appliance.service").stdout == pid


def test_a_signed_request_returns_a_resized_image_from_the_bucket(configured: Boot) -> None:
    path, query = "/" + urllib.parse.quote("photos/cat one.jpg"), "width=320&format=webp"
    status, body = fetch(configured, f"{path}?{query}")
    assert status in (401, 403), body  # signing is on: unsigned URLs are refused
    status, body = fetch(configured, sign_url(path, query, SIGNING_KEY))
    assert status == 200, body
    fmt, (width, _) = image_size(body)
    assert (fmt, width) == ("WEBP", 320)


def test_ssh_refuses_passwords_and_root(configured: Boot) -> None:
    effective = configured.host.run("sshd -T").stdout.lower().splitlines()
    assert "passwordauthentication no" in effective
    assert "permitrootlogin no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert configured.host.run("passwd -S root").stdout.split()[1] == "L"
    # and from outside: root is refused even with the right key, passwords are not offered
    result = configured.vm.ssh_as("root", "true")
    assert result.returncode != 0
    result = configured.vm.ssh_password_probe()
    assert "password" not in result.stderr.split("(")[-1], result.stderr


def test_the_validate_scripts_checks_still_hold(configured: Boot) -> None:
    host = configured.host
    # the launch key is the only authorized_keys, installed at boot by cloud-init
    keys = host.run("find / -xdev -name authorized_keys -size +0 2>/dev/null").stdout.split()
    assert "/home/admin/.ssh/authorized_keys" in keys
    for other in set(keys) - {"/home/admin/.ssh/authorized_keys"}:
        # cloud-init puts the launch key in root's file too, behind a command that refuses the
        # login (disable_root); sshd refuses root before that anyway
        lines = host.file(other).content_string.strip().splitlines()
        assert other == "/root/.ssh/authorized_keys" and all(
            line.startswith("no-port-forwarding") and 'command="' in line for line in lines
        ), (other, lines)
    assert not host.file("/root/.bash_history").exists
    assert host.file("/etc/machine-id").content_string.strip() != ""  # made at this first boot
    assert host.run("ls /var/lib/apt/lists | grep -c _ || true").stdout.strip() == "0"
    # cloud-init does not take the instance store for /mnt
    assert "/mnt" not in host.file("/etc/fstab").content_string


# --- second boot: different size, broken user-data ------------------------------------------


@pytest.fixture(scope="module")
def first_tuned(configured: Boot) -> dict[str, Any]:
    tuned: dict[str, Any] = configured.json("/run/appliance/tuned.json")
    configured.vm.stop()  # one VM at a time on a 2-core host
    return tuned


def test_a_bigger_vm_gets_a_bigger_plan(first_tuned: dict[str, Any], broken: Boot) -> None:
    second = assert_tuned_matches(broken, cpus=2)
    assert second != first_tuned
    assert second["cache"]["memory_bytes"] > first_tuned["cache"]["memory_bytes"]
    assert second["server"]["workers"] > first_tuned["server"]["workers"]
    assert second["server"]["threads"] > first_tuned["server"]["threads"]


def test_broken_user_data_leaves_the_service_up_and_ready_names_the_key(broken: Boot) -> None:
    assert broken.host.service("appliance.service").is_running
    problems = broken.json("/run/appliance/problems.json")
    assert any("origin.s3.bucket" in line for line in problems["user-data"]), problems
    status, body = fetch(broken, "/ready")
    assert status == 503 and b"origin.s3.bucket" in body, body
    journal = broken.host.run("journalctl -b -u appliance-autotune.service").stdout
    assert "origin.s3.bucket" in journal
    # still serving: no good user-data ever, so the built-in samples and the welcome page
    status, body = fetch(broken, "/")
    assert status == 200 and b"user data" in body
    sample = broken.host.run("ls /opt/appliance/samples").stdout.split()[0]
    status, body = fetch(broken, "/" + urllib.parse.quote(sample) + "?width=200")
    assert status == 200 and image_size(body)[1][0] == 200


def assert_tuned_matches(boot: Boot, *, cpus: int) -> dict[str, Any]:
    host = boot.host
    assert int(host.run("nproc").stdout) == cpus
    tuned: dict[str, Any] = boot.json("/run/appliance/tuned.json")
    facts = boot.json("/run/appliance/autotune.json")
    server = tuned["server"]
    # decision 0007: each worker runs one transcode thread per CPU it may use
    assert server["workers"] >= 1 and 1 <= server["threads"] <= cpus
    mem_total = int(host.run("awk '/MemTotal/ {print $2 * 1024}' /proc/meminfo").stdout)
    cache = tuned["cache"]
    per_worker = cache["memory_bytes"] + cache["original_memory_bytes"]
    assert 0 < per_worker * server["workers"] < mem_total / 2
    assert json.dumps(facts).count(str(cpus)) >= 1
    # the service runs with exactly this plan: its worker processes are there
    workers = host.run("pgrep -u appliance -f 'appliance serve' | wc -l").stdout.strip()
    assert int(workers) == server["workers"] + 1  # the supervisor and its workers
    return tuned


def test_no_user_data_at_all_serves_the_samples_and_is_ready(broken: Boot, imds: Any) -> None:
    """Marketplace one-click: no user-data. The boot steps run again as at a new boot."""
    state = json.loads(imds.state_path.read_text())
    state["user_data"] = None
    imds.write(state)
    host = broken.host
    host.run_expect([0], "systemctl restart appliance-autotune.service appliance.service")
    assert not host.file("/run/appliance/problems.json").exists
    assert not host.file("/run/appliance/userdata.json").exists
    status, body = fetch(broken, "/ready")
    assert status == 200, body
    status, body = fetch(broken, "/")
    assert status == 200 and b"user data" in body
    sample = host.run("ls /opt/appliance/samples").stdout.split()[0]
    status, body = fetch(broken, "/" + urllib.parse.quote(sample) + "?width=120&format=webp")
    assert status == 200 and image_size(body)[1][0] == 120
