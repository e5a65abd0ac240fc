"""Boot-time steps run by the oneshot systemd units before the service starts: the cache disk,
autotune, and EC2 user-data. They meet the server only through files under /run/appliance."""
