"""The client's address, resolved once for every consumer (docs/deploy.md "Client addresses").

The sign-in lockout (django-axes, via AXES_CLIENT_IP_CALLABLE), the access log, exports and the audit log
all ask ``client_ip(request)``, so they always agree.

``TRUSTED_PROXY_COUNT`` is the number of reverse proxies in front of Django that we run ourselves:

- 0: Django is reached directly; ``REMOTE_ADDR`` is the client and X-Forwarded-For is ignored (a client
  could write anything there).
- 1: the documented nginx, which sends ``X-Forwarded-For: $remote_addr`` (one address).  The client is the
  last X-Forwarded-For entry; entries to its left (if nginx appends instead) are the client's own claims
  and are ignored.
- 2: a load balancer in front of nginx, both appending: the client is the second entry from the right.

django-ipware's ``proxy_count`` means something else (the number of proxy addresses *in* the header after
the client's), so with nginx's one-address header it resolved no address at all and axes locked the
username for everybody.  This function does not depend on it.
"""

import ipaddress

from django.conf import settings


def _address(value: str | None) -> str | None:
    """A normalised IP address from a header value (tolerating a port), or ``None``."""
    value = (value or "").strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    remote = _address(request.META.get("REMOTE_ADDR"))
    count = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if count <= 0:
        return remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if not hops:
        # Not through our proxy (a health check on the loopback interface): the peer is the client.
        return remote
    # With fewer hops than proxies, the leftmost is the farthest address a proxy of ours saw.
    return _address(hops[-count] if len(hops) >= count else hops[0]) or remote
