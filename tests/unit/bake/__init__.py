"""Tests of appliance.bake: the python-packer adapter, its output parser and AMI housekeeping."""
