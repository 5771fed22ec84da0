"""Benchmarks for tracedb: ingest, queries at scale, and the thread page."""
