"""Single sign-on, as pure protocol code: SAML 2.0 (`saml`, the one module importing
python3-saml) and OpenID Connect (`oidc`, the one importing authlib), connection names and
URLs (`connections`), the user in IdP attribute names (`profile`), and the identity tokens
handed to the product (`tokens`).

Imports neither aiohttp nor SQLAlchemy and writes nothing to storage.
"""
