"""Sign a persona in once for a whole module and reuse the session in each test.

Signing in for each test cost more than many of their requests.  ``session_of`` signs in through
``force_login`` (the same sign-in signals a test's own sign-in sends: session rotation, the sessions
record, the access log); ``resume`` makes a test client send that session.  Built inside conftest.py's
``module_rows``, the sessions live in the module's transaction, so a test that signs out or rotates one is
rolled back like any other change.
"""

from django.conf import settings
from django.test import Client


def session_of(user) -> str:
    """The session key a browser holds after ``user`` signed in."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def resume(client, session_key: str) -> None:
    """``client`` sends the session ``session_key`` from now on."""
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
