"""API throughput beside its ceilings: generate vs raw `start_workflow`, status vs a bare Litestar endpoint."""
