"""The public HTTP API (Litestar)."""
