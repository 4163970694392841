"""Optional server-side captcha check on sign-up: Cloudflare Turnstile or hCaptcha.

With `web.captcha = "turnstile"` (or `"hcaptcha"`), `web.captcha_site_key` and the
secret (`DIGEST_CAPTCHA_SECRET`, or `web.captcha_secret`), the sign-up form shows the
provider's widget, and a sign-up counts only if the provider's siteverify endpoint says
the token the widget posted is good. Anything else (no token, a bad one, the endpoint
unreachable or answering nonsense) refuses the sign-up: the check fails closed.
`web.captcha_verify_url` replaces the provider's endpoint (tests use a local one).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from digest.config import Settings
from digest.errors import ConfigError

log = logging.getLogger("digest.web")
TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024
MAX_RESPONSE_CHARS = 4096  # Turnstile's tokens are at most 2048 characters


@dataclass(frozen=True)
class Provider:
    field: str  # the form field the widget fills in
    widget_class: str
    script: str
    verify_url: str
    sources: str  # what the page must be allowed to load (CSP)


PROVIDERS = {
    "turnstile": Provider("cf-turnstile-response", "cf-turnstile",
                          "https://challenges.cloudflare.com/turnstile/v0/api.js",
                          "https://challenges.cloudflare.com/turnstile/v0/siteverify",
                          "https://challenges.cloudflare.com"),
    "hcaptcha": Provider("h-captcha-response", "h-captcha", "https://js.hcaptcha.com/1/api.js",
                         "https://api.hcaptcha.com/siteverify",
                         "https://hcaptcha.com https://*.hcaptcha.com"),
}


@dataclass(frozen=True)
class Captcha:
    provider: Provider
    site_key: str
    secret: str
    verify_url: str

    def verify(self, token: str | None, remote_ip: str | None) -> bool:
        """Whether the provider says `token` is a solved challenge for this site."""
        if not token or len(token) > MAX_RESPONSE_CHARS:
            return False
        form = {"secret": self.secret, "response": token, "sitekey": self.site_key}
        if remote_ip:
            form["remoteip"] = remote_ip
        request = urllib.request.Request(
            self.verify_url, data=urllib.parse.urlencode(form).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                data = json.loads(answer.read(MAX_ANSWER_BYTES))
        except (OSError, ValueError) as exc:  # unreachable, an HTTP error, not JSON
            log.warning("the captcha could not be verified: %s", exc)
            return False
        return isinstance(data, dict) and data.get("success") is True


def captcha_for(settings: Settings) -> Captcha | None:
    """The configured captcha, None if `web.captcha` is not set; ConfigError if it is
    set without a site key or a secret."""
    name = settings["web.captcha"]
    if not name:
        return None
    site_key, secret = settings["web.captcha_site_key"], settings["web.captcha_secret"]
    if not site_key or not secret:
        raise ConfigError(f"web.captcha is {name}: set web.captcha_site_key and the secret "
                          "(DIGEST_CAPTCHA_SECRET or web.captcha_secret)")
    provider = PROVIDERS[name]
    return Captcha(provider, site_key, secret,
                   settings["web.captcha_verify_url"] or provider.verify_url)
