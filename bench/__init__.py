"""Transcoder benchmark harness: ours against its peers, one core each. Run `python -m bench`."""
