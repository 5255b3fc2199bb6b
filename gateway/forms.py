"""Server-rendered pages with forms (accepting an invitation, the local login): the
headers they all carry and the token that protects their forms from cross-site posts.

The pages run no script and load nothing: the Content-Security-Policy allows only their
own inline style, forms posting back to the gateway, and no framing (clickjacking). They
are never cached and send no Referer, since some of their addresses hold a secret (an
invitation link).

A form's token is a random value also set as a short-lived cookie, SameSite=Strict and
HttpOnly, for the pages under one path: a post is accepted only when the form's token
equals the browser's cookie (compared in constant time). Another site can neither read
the cookie to copy it into a form nor make the browser send it along a cross-site post.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Mapping

from aiohttp import web

CSRF_COOKIE = "idgate_form"
CSRF_FIELD = "csrf"
CSRF_SECONDS = 1800  # how long a page's forms can be sent
CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin-top:1rem;font-weight:600}"
    "input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font:inherit}"
    "button{margin-top:1.5rem;padding:.5rem 1.5rem;font:inherit}"
    "code{word-break:break-all}.error{color:#a00;font-weight:600}"
)


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(status: int, title: str, body: str, *, lang: str = "en") -> web.Response:
    """A whole page: `body` is HTML the caller built from escaped values."""
    document = (
        f'<!doctype html><html lang="{lang}"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style>"
        f"<h1>{escape(title)}</h1>{body}</html>"
    )
    return web.Response(
        status=status, text=document, content_type="text/html", headers=dict(HEADERS)
    )


def message(status: int, title: str, text: str) -> web.Response:
    return page(status, title, f"<p>{escape(text)}</p>")


def error(text: str | None) -> str:
    """The refusal shown above a form, if any (`role=alert`: read out at once)."""
    return f'<p class="error" role="alert">{escape(text)}</p>' if text else ""


def field(
    name: str,
    label: str,
    *,
    kind: str = "text",
    autocomplete: str = "off",
    value: str | None = None,
    extra: str = "",
) -> str:
    """A labelled input."""
    shown = f' value="{escape(value)}"' if value is not None else ""
    return (
        f'<label for="{escape(name)}">{escape(label)}</label>'
        f'<input id="{escape(name)}" name="{escape(name)}" type="{escape(kind)}"'
        f' autocomplete="{escape(autocomplete)}"{shown} {extra}>'
    )


def form(token: str, inner: str, button: str, hidden: Mapping[str, str] | None = None) -> str:
    """A form posting to the page's own address, carrying the token."""
    fields = {CSRF_FIELD: token, **(hidden or {})}
    kept = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )
    submit = f'<button type="submit">{escape(button)}</button>'
    return f'<form method="post">{kept}{inner}{submit}</form>'


def form_token(request: web.Request) -> str:
    """The browser's token if it has a well-formed one, else a new one (set it with
    `set_form_token`)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if 20 <= len(current) <= 64 else secrets.token_urlsafe(24)


def set_form_token(response: web.StreamResponse, token: str, path: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path=path,
        max_age=CSRF_SECONDS,
        secure=True,
        httponly=True,
        samesite="Strict",
    )


def form_token_ok(request: web.Request, posted: Mapping[str, object]) -> bool:
    """Whether the posted form carries the token of this browser's cookie."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = posted.get(CSRF_FIELD)
    if not cookie or not isinstance(sent, str):
        return False
    return secrets.compare_digest(cookie.encode(), sent.encode())


def expired_form() -> web.Response:
    return message(
        403,
        "This form has expired",
        "Go back, reload the page and try again. (The page must be opened in this browser.)",
    )


__all__ = [
    "CSP",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "HEADERS",
    "error",
    "escape",
    "expired_form",
    "field",
    "form",
    "form_token",
    "form_token_ok",
    "message",
    "page",
    "set_form_token",
]
