# Variables of the appliance image build. `appliance bake` (appliance/bake/) passes them; the
# defaults build the AWS images from Debian's official AMIs in us-east-1.

variable "version" {
  type    = string
  default = "0.0.0-dev"
}

variable "git_commit" {
  type    = string
  default = "unknown"
}

variable "debian_release" {
  # 13 = trixie, 12 = bookworm: the AMI's base, the local image's base and the wheel's target
  type    = string
  default = "13"
}

# --- what gets installed (both sources) ---

variable "payload_amd64" {
  # a directory holding either a wheelhouse built for debian_release (appliance-*.whl, its
  # dependencies and runtime-packages.txt: scripts/build-wheelhouse.sh) or an sdist
  # (appliance-*.tar.gz), which is then compiled inside the image
  type    = string
  default = ".cache/image/payload-amd64"
}

variable "payload_arm64" {
  # Graviton: an sdist unless a wheelhouse built for arm64 is supplied
  type    = string
  default = ".cache/image/payload-arm64"
}

variable "samples_dir" {
  # the images an unconfigured instance serves (Marketplace one-click, no user-data)
  type    = string
  default = ".cache/image/samples"
}

# --- amazon-ebs ---

variable "aws_region" {
  type    = string
  default = "us-east-1"
}

variable "ami_regions" {
  # copies of the AMI to other regions; none unless asked
  type    = list(string)
  default = []
}

variable "instance_type_amd64" {
  type    = string
  default = "c6i.large"
}

variable "instance_type_arm64" {
  type    = string
  default = "c7g.large"
}

variable "root_volume_gb" {
  type    = number
  default = 8
}

# --- qemu (the local image that tests boot) ---

variable "base_image" {
  # scripts/build-base-image.sh: Debian debian_release with cloud-init, like Debian's AMI
  type    = string
  default = ".cache/image/base.qcow2"
}

variable "ssh_key" {
  # the private half of the key the fake IMDS serves as public-keys/0 (cloud-init installs it)
  type    = string
  default = ".cache/image/id_ed25519"
}

variable "accelerator" {
  # "kvm" only where /dev/kvm is real hardware virtualisation; "tcg" otherwise (see
  # docs/local-image.md: a nested PVM /dev/kvm hangs the build until ssh_timeout)
  type    = string
  default = "tcg"
}

variable "cpus" {
  # under TCG on a 2-core host one vCPU boots faster than two
  type    = number
  default = 1
}

variable "memory" {
  type    = number
  default = 1024
}

variable "imds_port" {
  # host-loopback port of tests/image/fake_imds.py, reached from the guest as 169.254.169.254:80
  type    = number
  default = 8169
}

variable "output_dir" {
  type    = string
  default = ".cache/image/output"
}

variable "ssh_timeout" {
  type    = string
  default = "15m"
}
