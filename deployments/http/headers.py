"""Security headers on every response the Ingress sends.

Every answer: `X-Content-Type-Options: nosniff` (a PNG or JSON is never run as something else),
`Referrer-Policy: no-referrer`, `Cross-Origin-Resource-Policy: same-origin`. The web page gets a
strict Content-Security-Policy (its own script and styles only, same-origin requests, no
framing); Swagger UI at `/docs` needs its one inline script. API answers carry a CSP that allows
nothing, so a response opened in a browser by mistake can run nothing either.
"""

from __future__ import annotations

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def security_headers(path: str) -> dict[str, str]:
    """The headers for a response to `path`."""
    if path == "/" or path.startswith("/static/app/"):
        csp = PAGE_CSP
    elif path == "/docs" or path.startswith("/static/swagger-ui/"):
        csp = DOCS_CSP
    else:
        csp = API_CSP
    return {**COMMON, "Content-Security-Policy": csp}
