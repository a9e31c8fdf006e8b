"""WeCom (企业微信) app messages (应用消息) and web sign-in (网页授权 / 扫码登录).

``gettoken`` gives an access token for the school's app (corp id + the app's
secret) valid for ``expires_in`` seconds; it is cached, shared by every worker
through Django's cache, and fetched again when WeCom says it is no longer valid.
``message/send`` posts a textcard to ``touser`` (the student's WeCom userid,
by default the 学号).
"""

import json
import urllib.parse
from dataclasses import dataclass

from django.core.cache import cache

from .http import ProviderError, request_json

API = "https://qyapi.weixin.qq.com"
TOKEN_INVALID = {40001, 40014, 42001}
RETRY = {-1, 45009, 45033, 45047, 6000}


@dataclass(frozen=True)
class Config:
    corp_id: str
    agent_id: int
    secret: str
    api: str = API


def _token_key(config: Config) -> str:
    return f"wecom-token:{config.corp_id}:{config.agent_id}"


def access_token(config: Config, *, fresh: bool = False) -> str:
    key = _token_key(config)
    if not fresh:
        token = cache.get(key)
        if token:
            return token
    query = urllib.parse.urlencode({"corpid": config.corp_id, "corpsecret": config.secret})
    answer = request_json(f"{config.api}/cgi-bin/gettoken?{query}")
    if answer.get("errcode", 0) != 0:
        raise ProviderError(str(answer.get("errcode")), answer.get("errmsg", ""), retry=answer.get("errcode") in RETRY)
    # Renewed five minutes early so a token never expires between reading and use.
    cache.set(key, answer["access_token"], max(60, int(answer.get("expires_in", 7200)) - 300))
    return answer["access_token"]


def _call(config: Config, path: str, payload: dict | None = None, query: dict | None = None) -> dict:
    """One API call with the cached token, fetched again once if WeCom says it has expired."""
    for attempt in (0, 1):
        params = urllib.parse.urlencode({"access_token": access_token(config, fresh=attempt == 1), **(query or {})})
        url = f"{config.api}{path}?{params}"
        if payload is None:
            answer = request_json(url)
        else:
            body = json.dumps(payload, ensure_ascii=False).encode()
            answer = request_json(url, method="POST", body=body, headers={"Content-Type": "application/json"})
        code = answer.get("errcode", 0)
        if code in TOKEN_INVALID and attempt == 0:
            cache.delete(_token_key(config))
            continue
        if code != 0:
            raise ProviderError(str(code), answer.get("errmsg", ""), retry=code in RETRY)
        return answer
    raise ProviderError("token", "access token refused twice", retry=True)


def send_textcard(config: Config, userid: str, *, title: str, description: str, url: str, button: str = "详情") -> str:
    answer = _call(
        config,
        "/cgi-bin/message/send",
        {
            "touser": userid,
            "msgtype": "textcard",
            "agentid": config.agent_id,
            "textcard": {"title": title, "description": description, "url": url, "btntxt": button},
        },
    )
    if answer.get("invaliduser"):
        raise ProviderError("invaliduser", answer["invaliduser"], retry=False)
    return str(answer.get("msgid", ""))


def authorize_url(config: Config, redirect_uri: str, state: str, *, qr: bool = False) -> str:
    """Where to send the browser: the in-app OAuth page, or the QR-code sign-in on a computer."""
    if qr:
        query = {"login_type": "CorpApp", "appid": config.corp_id, "agentid": config.agent_id,
                 "redirect_uri": redirect_uri, "state": state}  # fmt: skip
        return "https://login.work.weixin.qq.com/wwlogin/sso/login?" + urllib.parse.urlencode(query)
    query = {"appid": config.corp_id, "redirect_uri": redirect_uri, "response_type": "code",
             "scope": "snsapi_base", "state": state, "agentid": config.agent_id}  # fmt: skip
    return "https://open.weixin.qq.com/connect/oauth2/authorize?" + urllib.parse.urlencode(query) + "#wechat_redirect"


def userid_for_code(config: Config, code: str) -> str:
    """The WeCom userid behind an OAuth ``code``; "" for someone outside the school (an ``openid`` only)."""
    answer = _call(config, "/cgi-bin/auth/getuserinfo", query={"code": code})
    return answer.get("userid") or answer.get("UserId") or ""
