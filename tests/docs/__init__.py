"""Documentation tests: every documented command runs as written, or says why not."""
