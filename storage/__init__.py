"""Postgres storage: tables, migrations, filter-to-SQL, repositories, embedded server.

Every SQL statement of idgate lives here. Holds no SCIM or SSO rule and imports no HTTP.
"""
