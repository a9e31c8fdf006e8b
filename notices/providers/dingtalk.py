"""DingTalk (钉钉) work notifications (工作通知) and sign-in (免登 / 扫码).

``gettoken`` (app key + secret) gives a cached access token; a work
notification is ``topapi/message/corpconversation/asyncsend_v2`` to the
student's DingTalk userid (by default the 学号) with an action card that opens
the portal.
"""

import json
import urllib.parse
from dataclasses import dataclass

from django.core.cache import cache

from .http import ProviderError, request_json

API = "https://oapi.dingtalk.com"
TOKEN_INVALID = {40001, 40014, 42001, 88}
RETRY = {-1, 90002, 90006, 90018, 43004}


@dataclass(frozen=True)
class Config:
    app_key: str
    app_secret: str
    agent_id: int
    api: str = API


def _token_key(config: Config) -> str:
    return f"dingtalk-token:{config.app_key}"


def access_token(config: Config, *, fresh: bool = False) -> str:
    key = _token_key(config)
    if not fresh:
        token = cache.get(key)
        if token:
            return token
    query = urllib.parse.urlencode({"appkey": config.app_key, "appsecret": config.app_secret})
    answer = request_json(f"{config.api}/gettoken?{query}")
    if answer.get("errcode", 0) != 0:
        raise ProviderError(str(answer.get("errcode")), answer.get("errmsg", ""), retry=answer.get("errcode") in RETRY)
    cache.set(key, answer["access_token"], max(60, int(answer.get("expires_in", 7200)) - 300))
    return answer["access_token"]


def _post(config: Config, path: str, payload: dict) -> dict:
    for attempt in (0, 1):
        query = urllib.parse.urlencode({"access_token": access_token(config, fresh=attempt == 1)})
        body = json.dumps(payload, ensure_ascii=False).encode()
        answer = request_json(
            f"{config.api}{path}?{query}", method="POST", body=body, headers={"Content-Type": "application/json"}
        )
        code = answer.get("errcode", 0)
        if code in TOKEN_INVALID and attempt == 0:
            cache.delete(_token_key(config))
            continue
        if code != 0:
            raise ProviderError(str(code), answer.get("errmsg", ""), retry=code in RETRY)
        return answer
    raise ProviderError("token", "access token refused twice", retry=True)


def send_action_card(config: Config, userid: str, *, title: str, markdown: str, url: str, button: str = "查看") -> str:
    answer = _post(
        config,
        "/topapi/message/corpconversation/asyncsend_v2",
        {
            "agent_id": config.agent_id,
            "userid_list": userid,
            "msg": {
                "msgtype": "action_card",
                "action_card": {"title": title, "markdown": markdown, "single_title": button, "single_url": url},
            },
        },
    )
    return str(answer.get("task_id", ""))


def authorize_url(config: Config, redirect_uri: str, state: str) -> str:
    """The QR-code / in-app sign-in page (the in-app 免登 uses the same code exchange)."""
    query = {"redirect_uri": redirect_uri, "response_type": "code", "client_id": config.app_key,
             "scope": "openid", "state": state, "prompt": "consent"}  # fmt: skip
    return "https://login.dingtalk.com/oauth2/auth?" + urllib.parse.urlencode(query)


def userid_for_code(config: Config, code: str) -> str:
    """The DingTalk userid behind a 免登 ``code``; "" for someone outside the school."""
    answer = _post(config, "/topapi/v2/user/getuserinfo", {"code": code})
    return (answer.get("result") or {}).get("userid", "")
