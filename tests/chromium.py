"""The headless Chromium command line the page tests share (Debian's chromium, offline)."""

from __future__ import annotations

# no sandbox (root in CI), no GPU, and nothing that reaches the network on its own
HEADLESS_CHROMIUM = (
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
