# The appliance machine image: one build, two kinds of source sharing one list of provisioners.
#   amazon-ebs.amd64 / amazon-ebs.arm64: the AMI, from Debian's official AMI (owner 136693071363)
#   qemu.local: the same provisioning on a local qcow2 that tests/image boots under QEMU
# Packer 1.6.6 (Debian's package): HCL2 with bundled builders, so no `packer init` and no
# required_plugins block (1.6.6 rejects it). Build with `appliance bake local|aws`, which also
# does what 1.6.6 cannot: IMDSv2-only on the AMI (docs/baking.md). Run packer from the
# repository root: relative paths in the variables are relative to it.

locals {
  codename = { "12" = "bookworm", "13" = "trixie" }[var.debian_release]
  stamp    = formatdate("YYYYMMDD-hhmmss", timestamp())
  tags = {
    "appliance:version"        = var.version
    "appliance:git-commit"     = var.git_commit
    "appliance:debian-release" = var.debian_release
  }
  # Each provisioner script does one verb, runs as root, and finds the uploaded files here.
  src     = "/tmp/appliance-src"
  execute = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
}

# What both AMIs share; the architecture-specific settings are in the build block's named
# sources amazon-ebs.amd64 and amazon-ebs.arm64 (Packer 1.6.6 lets them add settings, not
# override them).
source "amazon-ebs" "debian" {
  region        = var.aws_region
  ami_regions   = var.ami_regions
  ssh_username  = "admin"
  ena_support   = true
  sriov_support = true
  encrypt_boot  = false # AWS Marketplace refuses AMIs with encrypted snapshots
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    throughput            = 125 # gp3's baseline, included in its price
    iops                  = 3000
    delete_on_termination = true
  }
}

source "qemu" "local" {
  iso_url              = var.base_image
  iso_checksum         = "none"
  disk_image           = true
  use_backing_file     = false # broken with QEMU 7.2 ("Backing file specified without backing format")
  skip_resize_disk     = true
  skip_compaction      = true
  format               = "qcow2"
  accelerator          = var.accelerator
  headless             = true
  cpus                 = var.cpus
  memory               = var.memory
  disk_interface       = "virtio"
  net_device           = "virtio-net"
  boot_wait            = "1s"
  communicator         = "ssh"
  ssh_username         = "admin"
  ssh_private_key_file = var.ssh_key
  ssh_timeout          = var.ssh_timeout
  host_port_min        = 2300
  host_port_max        = 2399
  shutdown_command     = "sudo systemctl poweroff"
  output_directory     = var.output_dir
  vm_name              = "appliance.qcow2"
  qemuargs = [
    # Our -netdev replaces packer's, which would forward SSH on every interface: loopback only.
    # The slirp net sits in 169.254.0.0/16 because guestfwd only reaches addresses inside it; the
    # fake IMDS (tests/image/fake_imds.py) answers 169.254.169.254:80 as on EC2.
    ["-netdev", "user,id=user.0,net=169.254.0.0/16,host=169.254.0.2,dns=169.254.0.3,dhcpstart=169.254.0.15,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22,guestfwd=tcp:169.254.169.254:80-cmd:socat - TCP:127.0.0.1:${var.imds_port}"],
    # qemu64 lacks cmpxchg16b, and Debian 13's kernel under TCG then double-faults in the slab
    # allocator now and then; "max" is every feature TCG emulates (AVX2 included).
    ["-cpu", "max"],
    # cloud-init's Ec2 datasource looks for this before it asks the IMDS
    ["-smbios", "type=1,manufacturer=Amazon EC2,product=appliance-local,uuid=ec2e1916-0000-4000-8000-000000000001"],
    ["-serial", "file:${var.output_dir}-console.log"],
  ]
}

build {
  sources = ["source.qemu.local"]
  source "source.amazon-ebs.debian" {
    name            = "amd64"
    instance_type   = var.instance_type_amd64
    ami_name        = "appliance-${var.version}-debian${var.debian_release}-amd64-${local.stamp}"
    ami_description = "appliance ${var.version}: on-the-fly image resizing from S3 (Debian ${var.debian_release}, amd64)"
    source_ami_filter {
      filters = {
        name                = "debian-${var.debian_release}-amd64-*"
        architecture        = "x86_64"
        virtualization-type = "hvm"
        root-device-type    = "ebs"
      }
      owners      = ["136693071363"] # Debian
      most_recent = true
    }
    tags          = merge(local.tags, { Name = "appliance ${var.version} amd64", "appliance:arch" = "amd64" })
    snapshot_tags = merge(local.tags, { "appliance:arch" = "amd64" })
    run_tags      = { Name = "appliance-bake-amd64" }
  }
  source "source.amazon-ebs.debian" {
    name            = "arm64"
    instance_type   = var.instance_type_arm64
    ami_name        = "appliance-${var.version}-debian${var.debian_release}-arm64-${local.stamp}"
    ami_description = "appliance ${var.version}: on-the-fly image resizing from S3 (Debian ${var.debian_release}, arm64)"
    source_ami_filter {
      filters = {
        name                = "debian-${var.debian_release}-arm64-*"
        architecture        = "arm64"
        virtualization-type = "hvm"
        root-device-type    = "ebs"
      }
      owners      = ["136693071363"] # Debian
      most_recent = true
    }
    tags          = merge(local.tags, { Name = "appliance ${var.version} arm64", "appliance:arch" = "arm64" })
    snapshot_tags = merge(local.tags, { "appliance:arch" = "arm64" })
    run_tags      = { Name = "appliance-bake-arm64" }
  }

  provisioner "shell" {
    inline = ["mkdir -p ${local.src}/payload ${local.src}/samples ${local.src}/systemd ${local.src}/configs ${local.src}/docs"]
  }
  provisioner "file" {
    only        = ["qemu.local", "amazon-ebs.amd64"]
    source      = "${var.payload_amd64}/"
    destination = "${local.src}/payload"
  }
  provisioner "file" {
    only        = ["amazon-ebs.arm64"]
    source      = "${var.payload_arm64}/"
    destination = "${local.src}/payload"
  }
  provisioner "file" {
    source      = "${var.samples_dir}/"
    destination = "${local.src}/samples"
  }
  provisioner "file" {
    source      = "systemd/"
    destination = "${local.src}/systemd"
  }
  provisioner "file" {
    source      = "configs/"
    destination = "${local.src}/configs"
  }
  provisioner "file" {
    source      = "docs/"
    destination = "${local.src}/docs"
  }
  provisioner "file" {
    source      = "README.md"
    destination = "${local.src}/README.md"
  }

  provisioner "shell" {
    execute_command  = local.execute
    environment_vars = ["APPLIANCE_SRC=${local.src}", "DEBIAN_FRONTEND=noninteractive"]
    scripts = [
      "packer/scripts/install-packages.sh",
      "packer/scripts/install-appliance.sh",
      "packer/scripts/install-units.sh",
      "packer/scripts/harden.sh",
      "packer/scripts/validate.sh",
    ]
  }

  post-processor "manifest" {
    output     = "${var.output_dir}-manifest.json"
    strip_path = true
    custom_data = {
      version    = var.version
      git_commit = var.git_commit
    }
  }
}
