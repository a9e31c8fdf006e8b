"""Clients of the messaging platforms schools use: Alibaba Cloud and Tencent Cloud SMS, WeCom, DingTalk.

Each module builds and signs its platform's request exactly as the platform's
documentation and official SDK do, and maps the platform's answers to the
outbox's outcomes: success returns, ``RetryLater`` for what may work later
(rate limits, a busy platform, a refused connection), ``PermanentFailure`` for
what never will (an invalid number, a user that does not exist, a rejected
template).  Endpoints are settings, so the tests talk to local fake servers.
"""
