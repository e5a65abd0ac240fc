"""The python-packer adapter: the machine-readable parser, the streamed build, what is broken in
python-packer itself (so docs/decisions/0009 stays true), and `appliance bake local`.

Packer itself is replaced by a stand-in executable that records its arguments and prints what
Packer 1.6.6 prints; the transcripts below follow real 1.6.6 runs (field escaping, the ui lines
with an empty target, the manifest post-processor repeating each artifact)."""

# ruff: noqa: E501 (the transcripts are Packer's lines as it prints them)

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packer_stand_in import calls, stand_in_packer

from appliance.bake.command import choose_accelerator, detect_accelerator
from appliance.bake.packer import (
    PACKER_ENV,
    AmiId,
    Artifact,
    Message,
    PackerBuildError,
    PackerError,
    open_packer,
    parse_ami_ids,
    parse_line,
    parse_output,
    resolve_executable,
    run_build,
)
from appliance.cli import main

# `packer build -machine-readable -only=amazon-ebs.amd64,amazon-ebs.arm64
#  -var ami_regions=["eu-west-1"] packer` (trimmed: one build's progress shown).
AWS_TRANSCRIPT = """\
1764150000,,ui,say,==> amazon-ebs.amd64: Prevalidating any provided VPC information
1764150000,,ui,say,==> amazon-ebs.amd64: Prevalidating AMI Name: appliance-0.1.0-debian13-amd64-20251126-094000
1764150001,,ui,message,    amazon-ebs.amd64: Found Image ID: ami-0b1c2d3e4f5a6b7c8
1764150002,,ui,say,==> amazon-ebs.amd64: Creating temporary keypair: packer_6746a1f0-6b0d-55b5-1b4f-6d1b2a3c4d5e
1764150003,,ui,say,==> amazon-ebs.amd64: Launching a source AWS instance...
1764150020,,ui,message,    amazon-ebs.amd64: Instance ID: i-0123456789abcdef0
1764150040,,ui,say,==> amazon-ebs.amd64: Connected to SSH!
1764150041,,ui,say,==> amazon-ebs.amd64: Provisioning with shell script: packer/scripts/install-packages.sh
1764150090,,ui,message,    amazon-ebs.amd64: installed: nginx-light%!(PACKER_COMMA) libjpeg62-turbo
1764150200,,ui,say,==> amazon-ebs.amd64: Creating AMI appliance-0.1.0-debian13-amd64-20251126-094000 from instance i-0123456789abcdef0
1764150200,,ui,message,    amazon-ebs.amd64: AMI: ami-0aa11bb22cc33dd44
1764150300,,ui,say,==> amazon-ebs.amd64: Copying/Encrypting AMI (ami-0aa11bb22cc33dd44) to other regions...
1764150300,,ui,message,    amazon-ebs.amd64: Copying to: eu-west-1
1764150400,,ui,say,==> amazon-ebs.amd64: Running post-processor:  (type manifest)
1764150400,,ui,say,Build 'amazon-ebs.amd64' finished after 6 minutes 40 seconds.
1764150460,,ui,say,Build 'amazon-ebs.arm64' finished after 7 minutes 40 seconds.
1764150460,,ui,say,\\n==> Wait completed after 7 minutes 40 seconds
1764150460,,ui,say,\\n==> Builds finished. The artifacts of successful builds are:
1764150460,amazon-ebs.amd64,artifact-count,2
1764150460,amazon-ebs.amd64,artifact,0,builder-id,mitchellh.amazonebs
1764150460,amazon-ebs.amd64,artifact,0,id,eu-west-1:ami-0ee55ff66aa77bb88%!(PACKER_COMMA)us-east-1:ami-0aa11bb22cc33dd44
1764150460,amazon-ebs.amd64,artifact,0,string,AMIs were created:\\neu-west-1: ami-0ee55ff66aa77bb88\\nus-east-1: ami-0aa11bb22cc33dd44\\n
1764150460,amazon-ebs.amd64,artifact,0,files-count,0
1764150460,amazon-ebs.amd64,artifact,0,end
1764150460,,ui,say,--> amazon-ebs.amd64: AMIs were created:\\neu-west-1: ami-0ee55ff66aa77bb88\\nus-east-1: ami-0aa11bb22cc33dd44\\n
1764150460,amazon-ebs.amd64,artifact,1,builder-id,mitchellh.amazonebs
1764150460,amazon-ebs.amd64,artifact,1,id,eu-west-1:ami-0ee55ff66aa77bb88%!(PACKER_COMMA)us-east-1:ami-0aa11bb22cc33dd44
1764150460,amazon-ebs.amd64,artifact,1,string,AMIs were created:\\neu-west-1: ami-0ee55ff66aa77bb88\\nus-east-1: ami-0aa11bb22cc33dd44\\n
1764150460,amazon-ebs.amd64,artifact,1,files-count,0
1764150460,amazon-ebs.amd64,artifact,1,end
1764150460,,ui,say,--> amazon-ebs.amd64: AMIs were created:\\neu-west-1: ami-0ee55ff66aa77bb88\\nus-east-1: ami-0aa11bb22cc33dd44\\n
1764150460,amazon-ebs.arm64,artifact-count,1
1764150460,amazon-ebs.arm64,artifact,0,builder-id,mitchellh.amazonebs
1764150460,amazon-ebs.arm64,artifact,0,id,eu-west-1:ami-0c0c0c0c0c0c0c0c0%!(PACKER_COMMA)us-east-1:ami-0d0d0d0d0d0d0d0d0
1764150460,amazon-ebs.arm64,artifact,0,string,AMIs were created:\\neu-west-1: ami-0c0c0c0c0c0c0c0c0\\nus-east-1: ami-0d0d0d0d0d0d0d0d0\\n
1764150460,amazon-ebs.arm64,artifact,0,files-count,0
1764150460,amazon-ebs.arm64,artifact,0,end
1764150460,,ui,say,--> amazon-ebs.arm64: AMIs were created:\\neu-west-1: ami-0c0c0c0c0c0c0c0c0\\nus-east-1: ami-0d0d0d0d0d0d0d0d0\\n
"""

# `packer build -machine-readable -force -only=qemu.local packer`, OUTPUT standing for the
# output_dir variable.
QEMU_TRANSCRIPT = """\
1764150000,,ui,say,==> qemu.local: Retrieving ISO
1764150000,,ui,say,==> qemu.local: Copying hard drive...
1764150002,,ui,say,==> qemu.local: Starting VM%!(PACKER_COMMA) booting disk image
1764150020,,ui,say,==> qemu.local: Connected to SSH!
1764150060,,ui,say,==> qemu.local: Gracefully halting virtual machine...
1764150062,,ui,say,Build 'qemu.local' finished after 1 minute 2 seconds.
1764150062,,ui,say,\\n==> Builds finished. The artifacts of successful builds are:
1764150062,qemu.local,artifact-count,1
1764150062,qemu.local,artifact,0,builder-id,transcend.qemu
1764150062,qemu.local,artifact,0,id,VM
1764150062,qemu.local,artifact,0,string,VM files in directory: OUTPUT
1764150062,qemu.local,artifact,0,files-count,1
1764150062,qemu.local,artifact,0,file,0,OUTPUT/appliance.qcow2
1764150062,qemu.local,artifact,0,end
1764150062,,ui,say,--> qemu.local: VM files in directory: OUTPUT
"""

# What 1.6.6 prints when every build failed (a provisioner exited 3).
FAILED_TRANSCRIPT = """\
1764150000,,ui,say,==> qemu.local: Provisioning with shell script: packer/scripts/validate.sh
1764150001,,ui,message,    qemu.local: validate: /root/.bash_history is left%!(PACKER_COMMA) failing
1764150001,,ui,error,Build 'qemu.local' errored after 1 second: Script exited with non-zero exit status: 3.Allowed exit codes are: [0]
1764150001,,error-count,1
1764150001,,ui,error,\\n==> Some builds didn't complete successfully and had errors:
1764150001,qemu.local,error,Script exited with non-zero exit status: 3.Allowed exit codes are: [0]
1764150001,,ui,say,\\n==> Builds finished but no artifacts were created.
"""

# What 1.6.6 prints for an -only name that matches no source (it exits 0).
NOTHING_TRANSCRIPT = """\
1764150000,,ui,say,\\n==> Wait completed after 3 microseconds
1764150000,,ui,say,\\n==> Builds finished but no artifacts were created.
"""


@pytest.fixture
def template(tmp_path: Path) -> Path:
    folder = tmp_path / "repo" / "packer"
    folder.mkdir(parents=True)
    (folder / "appliance.pkr.hcl").write_text("# the stand-in does not read it\n")
    return folder


# --- the machine-readable format ---


def test_parse_line_splits_fields_and_unescapes_commas_and_newlines() -> None:
    line = (
        "1764150460,amazon-ebs.amd64,artifact,0,string,AMIs:\\neu-west-1: ami-1%!(PACKER_COMMA) x\n"
    )
    assert parse_line(line) == Message(
        timestamp=1764150460,
        target="amazon-ebs.amd64",
        type="artifact",
        data=("0", "string", "AMIs:\neu-west-1: ami-1, x"),
    )


@pytest.mark.parametrize(
    "line",
    ["flag provided but not defined: -parallel", "", "Usage: packer build [options] TEMPLATE"],
)
def test_parse_line_returns_none_for_lines_that_are_not_machine_readable(line: str) -> None:
    assert parse_line(line) is None


def test_aws_transcript_gives_one_artifact_per_build_with_every_region() -> None:
    artifacts, errors = parse_output(AWS_TRANSCRIPT.splitlines())
    assert errors == ()
    assert [a.build for a in artifacts] == ["amazon-ebs.amd64", "amazon-ebs.arm64"]
    assert artifacts[0].builder_id == "mitchellh.amazonebs"
    assert artifacts[0].amis == (
        AmiId("eu-west-1", "ami-0ee55ff66aa77bb88"),
        AmiId("us-east-1", "ami-0aa11bb22cc33dd44"),
    )
    assert artifacts[1].amis == (
        AmiId("eu-west-1", "ami-0c0c0c0c0c0c0c0c0"),
        AmiId("us-east-1", "ami-0d0d0d0d0d0d0d0d0"),
    )
    assert artifacts[0].description.splitlines()[1] == "eu-west-1: ami-0ee55ff66aa77bb88"
    assert artifacts[0].files == ()


def test_qemu_transcript_gives_the_image_file() -> None:
    artifacts, _ = parse_output(QEMU_TRANSCRIPT.splitlines())
    assert artifacts == (
        Artifact(
            build="qemu.local",
            builder_id="transcend.qemu",
            id="VM",
            description="VM files in directory: OUTPUT",
            files=("OUTPUT/appliance.qcow2",),
        ),
    )
    assert artifacts[0].amis == ()


def test_failed_transcript_gives_the_build_error_and_no_artifact() -> None:
    artifacts, errors = parse_output(FAILED_TRANSCRIPT.splitlines())
    assert artifacts == ()
    assert errors == (
        "qemu.local: Script exited with non-zero exit status: 3.Allowed exit codes are: [0]",
    )


def test_a_nil_artifact_is_skipped() -> None:
    lines = ["1,null.x,artifact-count,1", "1,null.x,artifact,0,nil", "1,null.x,artifact,0,end"]
    assert parse_output(lines) == ((), ())


@pytest.mark.parametrize("artifact_id", ["VM", "File", "us-east-1:snap-0123", "ami-0123abcd", ""])
def test_ids_that_are_not_amis_give_none(artifact_id: str) -> None:
    assert parse_ami_ids(artifact_id) == ()


# --- the streamed build ---


def test_build_streams_ui_lines_while_packer_runs(tmp_path: Path) -> None:
    """The stand-in prints one line, then waits (up to 20 s) for the progress callback to
    answer through a FIFO before it prints the artifact: output read only at exit would never
    answer, and the build would fail."""
    fifo = tmp_path / "answer"
    os.mkfifo(fifo)
    exe = tmp_path / "packer"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import os, select, sys\n"
        "print('1,,ui,say,==> qemu.local: Starting VM', flush=True)\n"
        f"fd = os.open({str(fifo)!r}, os.O_RDONLY | os.O_NONBLOCK)\n"
        "ready, _, _ = select.select([fd], [], [], 20)\n"
        "if not ready or not os.read(fd, 16):\n"
        "    print('1,,ui,error,no answer: output is not streamed'); sys.exit(9)\n"
        "print('1,qemu.local,artifact,0,id,VM')\n"
        "print('1,qemu.local,artifact,0,end')\n"
    )
    exe.chmod(0o755)
    seen: list[tuple[str, str]] = []

    def progress(kind: str, text: str) -> None:
        seen.append((kind, text))
        with open(fifo, "w") as answer:
            answer.write("go")

    result = run_build([str(exe)], progress=progress)
    assert seen == [("say", "==> qemu.local: Starting VM")]
    assert [a.id for a in result.artifacts] == ["VM"]


def test_a_failed_build_raises_with_packers_error_and_keeps_what_was_built(
    tmp_path: Path,
) -> None:
    half = AWS_TRANSCRIPT.replace("amazon-ebs.arm64,artifact", "amazon-ebs.arm64,skipped")
    half += "1764150461,amazon-ebs.arm64,error,Timeout waiting for SSH.\n"
    exe = stand_in_packer(tmp_path, half, exit_code=1)
    with pytest.raises(PackerBuildError, match=r"status 1: amazon-ebs\.arm64: Timeout") as caught:
        run_build([str(exe), "build"])
    assert [a.build for a in caught.value.result.artifacts] == ["amazon-ebs.amd64"]
    assert caught.value.result.exit_code == 1


def test_exit_0_without_an_artifact_is_a_failure(tmp_path: Path) -> None:
    exe = stand_in_packer(tmp_path, NOTHING_TRANSCRIPT)
    with pytest.raises(PackerBuildError, match=r"built nothing.*source\.qemu\.local"):
        run_build([str(exe), "build"], expected=["source.qemu.local"])


def test_a_named_build_without_an_artifact_is_a_failure(tmp_path: Path) -> None:
    exe = stand_in_packer(tmp_path, QEMU_TRANSCRIPT)
    with pytest.raises(PackerBuildError, match=r"no artifact for amazon-ebs\.amd64"):
        run_build([str(exe), "build"], expected=["qemu.local", "amazon-ebs.amd64"])
    assert run_build([str(exe), "build"], expected=["qemu.*"]).artifacts


def test_non_machine_readable_output_explains_a_failure(tmp_path: Path) -> None:
    exe = stand_in_packer(tmp_path, "flag provided but not defined: -parallel\n", exit_code=1)
    with pytest.raises(PackerBuildError, match="flag provided but not defined: -parallel"):
        run_build([str(exe), "build"])


# --- the client: python-packer's shape, our build ---


def test_client_runs_a_machine_readable_build_with_python_packers_flags(
    tmp_path: Path, template: Path
) -> None:
    exe = stand_in_packer(tmp_path / "bin", AWS_TRANSCRIPT)
    client = open_packer(
        template,
        exec_path=str(exe),
        only=["amazon-ebs.amd64", "amazon-ebs.arm64"],
        vars={"version": "1.2.3", "ami_regions": '["eu-west-1"]'},
    )
    assert client.version() == "1.6.6"
    result = client.build(force=True)
    assert calls(exe)[-1] == [
        "build",
        "-machine-readable",
        "-force",
        "-only=amazon-ebs.amd64,amazon-ebs.arm64",
        "-var",
        "version=1.2.3",
        "-var",
        'ami_regions=["eu-west-1"]',
        str(template),
    ]
    assert len(result.amis()) == 4


def test_client_refuses_only_and_except_together(tmp_path: Path, template: Path) -> None:
    exe = stand_in_packer(tmp_path / "bin", QEMU_TRANSCRIPT)
    client = open_packer(template, exec_path=str(exe), only=["qemu.local"], exc=["x.y"])
    with pytest.raises(PackerError, match='both "except" and "only"'):
        client.build()
    assert calls(exe) == []


def test_client_needs_the_template(tmp_path: Path) -> None:
    exe = stand_in_packer(tmp_path / "bin", QEMU_TRANSCRIPT)
    with pytest.raises(PackerError, match="no Packer template"):
        open_packer(tmp_path / "nowhere", exec_path=str(exe))


def test_executable_comes_from_the_option_then_the_environment(tmp_path: Path) -> None:
    exe = stand_in_packer(tmp_path / "bin", "")
    other = stand_in_packer(tmp_path / "other", "")
    assert resolve_executable(None, {PACKER_ENV: str(exe)}) == str(exe)
    assert resolve_executable(str(other), {PACKER_ENV: str(exe)}) == str(other)
    with pytest.raises(PackerError, match=r"packer not found.*APPLIANCE_PACKER"):
        resolve_executable(str(tmp_path / "missing"), {})


# --- python-packer as released (0.1.2): what docs/decisions/0009 says is broken ---


@pytest.fixture
def python_packer() -> Any:
    """python-packer's module (importlib: to a type checker run from the repository root, the
    packer/ template folder would pass for a module of that name)."""
    return importlib.import_module("packer")


def test_python_packer_build_passes_the_parallel_flag(
    tmp_path: Path, template: Path, python_packer: Any
) -> None:
    exe = stand_in_packer(tmp_path / "bin", QEMU_TRANSCRIPT)
    python_packer.Packer(str(template / "appliance.pkr.hcl"), exec_path=str(exe)).build()
    assert "-parallel=true" in calls(exe)[-1]


def test_real_packer_rejects_python_packers_build_and_runs_ours(
    tmp_path: Path, python_packer: Any
) -> None:
    real = shutil.which("packer")
    if real is None:
        pytest.skip("Packer is not installed here (Debian's package `packer`)")
    template = tmp_path / "null.pkr.hcl"
    template.write_text(
        'source "null" "one" {\n  communicator = "none"\n}\n'
        'build {\n  sources = ["source.null.one"]\n}\n'
    )
    with pytest.raises(python_packer.sh.ErrorReturnCode_1) as rejected:
        python_packer.Packer(str(template), exec_path=real).build()
    assert "-parallel=true" in rejected.value.full_cmd
    # The flag is the reason: the same build without it succeeds. (Packer 1.6.6 does not always
    # get its "flag provided but not defined: -parallel" line out before exiting.)
    without = subprocess.run([real, "build", str(template)], capture_output=True, check=False)
    assert without.returncode == 0
    ours = open_packer(template, exec_path=real, only=["null.one"])
    assert [a.builder_id for a in ours.build().artifacts] == ["fnoeding.null"]


def test_python_packer_cannot_stream_on_this_python(
    tmp_path: Path, template: Path, python_packer: Any
) -> None:
    exe = stand_in_packer(tmp_path / "bin", QEMU_TRANSCRIPT)
    lines: list[str] = []
    streaming = python_packer.Packer(
        str(template / "appliance.pkr.hcl"), exec_path=str(exe), out_iter=lines.append
    )
    with pytest.raises(AttributeError, match="getargspec"):
        streaming.build(parallel=False)
    assert lines == []


def test_python_packer_validate_crashes_on_an_invalid_template(
    tmp_path: Path, template: Path, python_packer: Any
) -> None:
    exe = stand_in_packer(tmp_path / "bin", "Error: Argument or block definition required\n", 1)
    with pytest.raises(AttributeError, match="message"):
        python_packer.Packer(str(template / "appliance.pkr.hcl"), exec_path=str(exe)).validate()
    ours = open_packer(template, exec_path=str(exe)).validate()
    assert not ours.succeeded
    assert "block definition required" in ours.output


def test_python_packer_refuses_a_template_folder(
    tmp_path: Path, template: Path, python_packer: Any
) -> None:
    exe = stand_in_packer(tmp_path / "bin", "")
    with pytest.raises(OSError, match="packerfile not found"):
        python_packer.Packer(str(template), exec_path=str(exe))
    assert open_packer(template, exec_path=str(exe)).packerfile == str(template)


# --- the accelerator ---

VMX = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n"
SVM = "processor\t: 0\nflags\t\t: fpu svm sse2 lahf_lm\n"
NONE = "processor\t: 0\nflags\t\t: fpu vme de pse sse2 hypervisor\nmodel name\t: vmx-less svm\n"


@pytest.mark.parametrize(
    ("kvm_writable", "cpuinfo", "kvm_pvm_loaded", "expected"),
    [
        (True, VMX, False, "kvm"),
        (True, SVM, False, "kvm"),
        (False, VMX, False, "tcg"),  # no usable /dev/kvm
        (True, NONE, False, "tcg"),  # no hardware virtualisation (the words elsewhere don't count)
        (True, VMX, True, "tcg"),  # nested PVM: its /dev/kvm hangs a stock guest
        (True, "", False, "tcg"),
    ],
)
def test_choose_accelerator(
    kvm_writable: bool, cpuinfo: str, kvm_pvm_loaded: bool, expected: str
) -> None:
    assert (
        choose_accelerator(
            kvm_writable=kvm_writable, cpuinfo=cpuinfo, kvm_pvm_loaded=kvm_pvm_loaded
        )
        == expected
    )


def test_detect_accelerator_reads_the_three_facts(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text(VMX)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kvm").write_text("")
    assert detect_accelerator(tmp_path) == "kvm"
    (tmp_path / "sys/module/kvm_pvm").mkdir(parents=True)
    assert detect_accelerator(tmp_path) == "tcg"


# --- appliance bake local ---


def test_bake_local_builds_qemu_local_and_names_the_image(
    tmp_path: Path, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = ".cache/image/output"
    image = template.parent / output / "appliance.qcow2"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"QFI\xfb")
    exe = stand_in_packer(tmp_path / "bin", QEMU_TRANSCRIPT.replace("OUTPUT", output))
    argv = ["bake", "local", "--template", str(template), "--packer", str(exe)]
    argv += ["--accelerator", "tcg", "--release", "12", "--var", "cpus=2", "--var", "version=9"]
    assert main(argv) == 0
    build = calls(exe)[-1]
    assert build[:4] == ["build", "-machine-readable", "-force", "-only=qemu.local"]
    assert build[-1] == str(template.resolve())
    pairs = dict(v.split("=", 1) for v in build[5:-1:2])
    assert pairs["accelerator"] == "tcg"
    assert pairs["debian_release"] == "12"
    assert pairs["cpus"] == "2"
    assert pairs["version"] == "9"  # --var wins over bake's own
    assert pairs["git_commit"]
    out = capsys.readouterr().out
    assert "==> qemu.local: Starting VM, booting disk image" in out
    assert f"local image: {output}/appliance.qcow2" in out


def test_bake_local_fails_when_the_image_file_is_not_there(
    tmp_path: Path, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exe = stand_in_packer(tmp_path / "bin", QEMU_TRANSCRIPT.replace("OUTPUT", "out"))
    argv = ["bake", "local", "--template", str(template), "--packer", str(exe)]
    assert main([*argv, "--accelerator", "tcg"]) == 1
    assert "missing: out/appliance.qcow2" in capsys.readouterr().err


def test_bake_local_fails_when_packer_built_nothing(
    tmp_path: Path, template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exe = stand_in_packer(tmp_path / "bin", NOTHING_TRANSCRIPT)
    argv = ["bake", "local", "--template", str(template), "--packer", str(exe)]
    assert main([*argv, "--accelerator", "tcg"]) == 1
    assert "built nothing" in capsys.readouterr().err
