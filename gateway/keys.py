"""Every `web.AppKey` of the application, declared in one place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.access import Access
from gateway.provisioning import Provisioning
from gateway.session_cache import SessionCache
from gateway.settings import Settings
from gateway.token_cache import TokenCache
from storage.account_store import AccountStore
from storage.admin_store import AdminStore
from storage.api_key_store import ApiKeyStore
from storage.audit_store import AuditLog
from storage.event_store import EventStore
from storage.invitation_store import InvitationStore
from storage.local_login_store import LocalLoginStore
from storage.partner_store import PartnerStore
from storage.scim_store import Principal, ScimStore
from storage.session_store import SessionStore
from storage.sso_store import Identities, LoginState, SsoStore

if TYPE_CHECKING:
    from gateway.identity_tokens import TokenIssuer
    from gateway.oidc_client import OidcDirectory
    from gateway.request_log import RequestLog

SETTINGS = web.AppKey("settings", Settings)
TOKEN_CACHE = web.AppKey("token_cache", TokenCache)
ENGINE = web.AppKey("engine", AsyncEngine)
STORE = web.AppKey("store", ScimStore)
SSO_STORE = web.AppKey("sso_store", SsoStore)
SESSIONS = web.AppKey("sessions", SessionStore)
SESSION_CACHE = web.AppKey("session_cache", SessionCache)
LOGIN_STATE = web.AppKey("login_state", LoginState)
IDENTITIES = web.AppKey("identities", Identities)
OIDC_DIRECTORY: web.AppKey[OidcDirectory] = web.AppKey("oidc_directory")
TOKEN_ISSUER: web.AppKey[TokenIssuer] = web.AppKey("token_issuer")
CLOCK = web.AppKey[Callable[[], datetime]]("clock")
PROVISIONING = web.AppKey("provisioning", Provisioning)
ACCESS = web.AppKey("access", Access)
AUDIT = web.AppKey("audit", AuditLog)
API_KEYS = web.AppKey("api_keys", ApiKeyStore)
EVENTS = web.AppKey("events", EventStore)
ADMIN_STORE = web.AppKey("admin_store", AdminStore)
INVITATIONS = web.AppKey("invitations", InvitationStore)
PARTNERS = web.AppKey("partners", PartnerStore)
ACCOUNTS = web.AppKey("accounts", AccountStore)
LOCAL_LOGINS = web.AppKey("local_logins", LocalLoginStore)
REQUEST_LOG: web.AppKey[RequestLog] = web.AppKey("request_log")  # unset when logging is off

PRINCIPAL = web.RequestKey("principal", Principal)  # set by SCIM authentication
REQUEST_ID = web.RequestKey("request_id", str)  # set for every request (gateway.app)
