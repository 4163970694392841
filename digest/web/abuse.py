"""Who counts as one mailbox and one client, and how many confirmation emails may go out.

A bot farm must not turn the sign-up form into a way to mail-bomb one inbox, nor the
newsletter's domain into a spam source. So the limits are keyed on what the sender
cannot vary for free:

- a mailbox, not an address: letter case, `+tags` and (for Gmail) dots in the local
  part do not make a new one (`mailbox_key`);
- a client network, not an address: an IPv4 address, or the /64 an IPv6 host gets
  (`client_key`);
- besides each mailbox, each domain and the whole site have a cap
  (`ConfirmationLimits`; the site's is `web.max_confirmations_per_hour`).

The counts live in the store (`Store.hit_all`), so every worker and host enforces one
limit.
"""

from __future__ import annotations

import ipaddress

from digest.store import Store
from digest.web.shared_limits import Limit

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
IPV6_PREFIX = 64
# Confirmations per mailbox: one per 10 minutes, three a day. Per domain: 30 an hour.
MAILBOX_LIMITS: tuple[Limit, ...] = ((1, 600.0), (3, 86_400.0))
DOMAIN_LIMITS: tuple[Limit, ...] = ((30, 3600.0),)
HOUR_S = 3600.0


def mailbox_key(email: str) -> str:
    """The mailbox an address delivers to, as far as the sign-up limits are concerned:
    `Ada.Lovelace+news@GoogleMail.com` is `adalovelace@gmail.com`."""
    local, _, domain = email.strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def domain_of(email: str) -> str:
    return mailbox_key(email).rpartition("@")[2]


def client_key(address: str) -> str:
    """An IPv4 address as it is, an IPv6 one as its /64 (one host can use them all)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


class ConfirmationLimits:
    """Whether one more confirmation email may go to an address: within its mailbox's,
    its domain's and the site's hourly limit. Counted in the store (one count for every
    worker and host), and only when all three allow it."""

    def __init__(self, per_hour: int) -> None:
        self.site_limits: tuple[Limit, ...] = ((per_hour, HOUR_S),)

    def allow(self, email: str, store: Store) -> str | None:
        """None if it may be sent (and it is counted), else which limit refuses it."""
        checks = ((f"mailbox\x00{mailbox_key(email)}", MAILBOX_LIMITS, "mailbox"),
                  (f"domain\x00{domain_of(email)}", DOMAIN_LIMITS, "domain"),
                  ("site", self.site_limits, "site"))
        refused = store.hit_all([(key, limits) for key, limits, _ in checks])
        return None if refused is None else checks[refused][2]
