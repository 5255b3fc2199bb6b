"""Throughput and latency benchmark of the SCIM endpoints: `python -m bench.scim --help`.

It measures idgate over loopback against a fresh PostgreSQL database, next to the same load on
a reference SCIM server (scim2-server) and to the bare SQL statements run through asyncpg.
docs/benchmarks.md records the figures and how they were produced.
"""
