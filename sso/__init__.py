"""Single sign-on: SAML 2.0 and OIDC connectors, login state, attribute mapping, JIT planning.

Imports neither aiohttp nor SQLAlchemy and writes nothing to storage.
"""
