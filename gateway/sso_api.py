"""The SSO endpoints under /sso/. For now: each SAML connection's SP metadata, for the IdP's
administrator to load or paste."""

from __future__ import annotations

from aiohttp import web

from gateway.keys import SETTINGS, SSO_STORE, STORE
from sso import saml
from sso.connections import SAML, connection_urls

METADATA_TYPE = "application/samlmetadata+xml"


async def sp_metadata(request: web.Request) -> web.Response:
    slug, name = request.match_info["tenant"], request.match_info["connection"]
    tenant = await request.config_dict[STORE].get_tenant(slug)
    found = await request.config_dict[SSO_STORE].get_connection(tenant.id, name) if tenant else None
    if found is None or found.type != SAML:
        raise web.HTTPNotFound(text=f"no SAML connection {name!r} in tenant {slug!r}")
    urls = connection_urls(request.config_dict[SETTINGS].base_url, slug, name)
    xml = saml.sp_metadata(
        entity_id=urls.entity_id,
        acs_url=urls.acs_url,
        certificate_pem=found.settings["sp_certificate"],
    )
    return web.Response(text=xml, content_type=METADATA_TYPE, charset="utf-8")


def create_sso_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/{tenant}/{connection}/metadata", sp_metadata)
    return app
