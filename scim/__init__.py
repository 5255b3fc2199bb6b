"""SCIM 2.0 protocol core (RFC 7643 schema, RFC 7644 protocol).

Grammar, validation, projection, listing maths and discovery documents, as functions over
plain data. This package imports no other idgate package and no I/O framework (aiohttp,
SQLAlchemy, asyncpg); it never reads the clock or the network: callers pass `now`.
"""
