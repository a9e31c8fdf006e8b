"""Settings of the HTTP bench's portal server: the portal's own settings, plus the bench-only page.

Used by bench/pages.py with ``DEBUG=0`` and the production variables set, so
that every page runs behind the full production middleware stack.
"""

from registrar_portal.settings import *  # noqa: F403  (the portal's settings, unchanged)

ROOT_URLCONF = "bench_urls"
