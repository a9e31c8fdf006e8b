"""One small JSON-over-HTTP helper for the provider clients (urllib: no extra dependency)."""

import json
import urllib.error
import urllib.request

TIMEOUT = 10


class ProviderError(Exception):
    """An answer the platform gave, with its own code; ``retry`` says whether trying later may help."""

    def __init__(self, code: str, message: str = "", *, retry: bool):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.retry = retry


def request_json(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None) -> dict:
    """The decoded JSON answer; a network failure or a 5xx is a ``ProviderError`` worth retrying."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        if exc.code >= 500 or exc.code == 429:
            raise ProviderError(f"HTTP {exc.code}", payload[:200].decode("utf-8", "replace"), retry=True) from None
        try:
            return json.loads(payload)  # platforms put their error codes in 4xx bodies too
        except ValueError:
            raise ProviderError(f"HTTP {exc.code}", retry=False) from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        raise ProviderError("network", str(exc), retry=True) from None
    try:
        return json.loads(payload)
    except ValueError:
        raise ProviderError("bad-response", payload[:200].decode("utf-8", "replace"), retry=True) from None
