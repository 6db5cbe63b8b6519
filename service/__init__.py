"""Running unattended: the metrics and health listener, the main loop's heartbeat and readiness checks."""
