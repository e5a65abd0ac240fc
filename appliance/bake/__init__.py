"""Build tooling: Packer builds of the machine image and AMI housekeeping with boto3. Never
imported by the server."""
