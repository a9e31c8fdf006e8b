"""API clients: creating and revoking their tokens, authenticating and rate-limiting a call.

A client acts through its own service account, so every scope rule of
``students.permissions`` applies to it unchanged (docs/architecture.md).
"""

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .errors import ServiceError
from .models import ApiClient

TOKEN_PREFIX = "rc_"


def _hash(token: str) -> str:
    # Tokens carry 256 random bits: a plain SHA-256 is as good as a slow hash here.
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_client_create(
    *, name: str, departments=None, can_write: bool = False, can_reveal: bool = False, by=None, rate_per_minute=120
) -> tuple[ApiClient, str]:
    """A new client and its token (returned once; only its hash is kept).

    Without ``departments`` the client sees the whole school; with them, only those.
    """
    User = get_user_model()
    if ApiClient.objects.filter(name=name).exists():
        raise ServiceError(f"接口客户端“{name}”已存在")
    account = User(
        username=f"api:{secrets.token_hex(6)}",
        first_name=name[:150],
        role=User.Role.SECRETARY if departments else User.Role.REGISTRAR,
    )
    account.set_unusable_password()  # nobody signs in as a client
    account.save()
    if departments:
        account.departments.set(departments)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient.objects.create(
        name=name,
        account=account,
        token_hash=_hash(token),
        token_prefix=token[:10],
        can_write=can_write,
        can_reveal=can_reveal,
        created_by=by,
        rate_per_minute=rate_per_minute,
    )
    return client, token


@transaction.atomic
def api_client_revoke(*, client: ApiClient, by=None) -> None:
    client.revoked_at = timezone.now()
    client.save(update_fields=["revoked_at"])
    client.account.is_active = False
    client.account.save(update_fields=["is_active"])


def api_client_for_token(token: str) -> ApiClient | None:
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    client = (
        ApiClient.objects.select_related("account")
        .filter(token_hash=_hash(token), revoked_at__isnull=True, account__is_active=True)
        .first()
    )
    return client


def api_client_admit(client: ApiClient, *, now=None) -> bool:
    """Count one call in the client's current minute; False when it is over its limit.

    Two conditional UPDATEs, no read-modify-write: concurrent workers never
    let a burst through nor lose a count.
    """
    now = now or timezone.now()
    window = now.replace(second=0, microsecond=0)
    clients = ApiClient.objects.filter(pk=client.pk)
    # A new minute: start a new window with this call.
    if clients.exclude(window_start=window).update(window_start=window, window_count=1, last_used_at=now):
        return True
    return bool(
        clients.filter(window_start=window, window_count__lt=F("rate_per_minute")).update(
            window_count=F("window_count") + 1, last_used_at=now
        )
    )


def seconds_to_next_window(now=None) -> int:
    now = now or timezone.now()
    return 60 - now.second if now.second else 60
