"""DingTalk (钉钉) work notifications (工作通知) and sign-in (网页 OAuth / 扫码, and the in-app 免登 code).

``gettoken`` (app key + secret) gives a cached access token; a work
notification is ``topapi/message/corpconversation/asyncsend_v2`` to the
student's DingTalk userid (by default the 学号) with an action card that opens
the portal.

Sign-in has two code kinds that DingTalk does not let be mixed:

- the web OAuth page (``login.dingtalk.com/oauth2/auth``, QR code on a computer, consent page in the app)
  returns an ``authCode`` for the new API: ``api.dingtalk.com/v1.0/oauth2/userAccessToken`` → the user's
  token → ``/v1.0/contact/users/me`` → unionId → ``topapi/user/getbyunionid`` → the userid in the school;
- the in-app JSAPI ``dd.runtime.permission.requestAuthCode`` returns a 免登 code for
  ``topapi/v2/user/getuserinfo`` (``userid_for_jsapi_code``).
"""

import json
import urllib.parse
from dataclasses import dataclass

from django.core.cache import cache

from .http import ProviderError, request_json

API = "https://oapi.dingtalk.com"
NEW_API = "https://api.dingtalk.com"  # the v1.0 API of the web OAuth sign-in (its own host and token)
TOKEN_INVALID = {40001, 40014, 42001, 88}
RETRY = {-1, 90002, 90006, 90018, 43004}


@dataclass(frozen=True)
class Config:
    app_key: str
    app_secret: str
    agent_id: int
    api: str = API
    new_api: str = NEW_API


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
    """The web OAuth page: a QR code on a computer, a consent page inside DingTalk; it returns ``authCode``."""
    query = {"redirect_uri": redirect_uri, "response_type": "code", "client_id": config.app_key,
             "scope": "openid", "state": state, "prompt": "consent"}  # fmt: skip
    return "https://login.dingtalk.com/oauth2/auth?" + urllib.parse.urlencode(query)


def _new_api(config: Config, path: str, *, payload: dict | None = None, token: str = "") -> dict:
    # api.dingtalk.com answers errors with an HTTP 4xx and {"code": "...", "message": "...", "requestid": ...}.
    headers = {"Content-Type": "application/json"}
    if token:
        headers["x-acs-dingtalk-access-token"] = token
    body = json.dumps(payload, ensure_ascii=False).encode() if payload is not None else None
    answer = request_json(
        f"{config.new_api}{path}", method="POST" if payload is not None else "GET", body=body, headers=headers
    )
    if "code" in answer and "message" in answer:
        raise ProviderError(str(answer["code"]), answer.get("message", ""), retry=False)
    return answer


def userid_for_auth_code(config: Config, auth_code: str) -> str:
    """The school's DingTalk userid behind a web OAuth ``authCode``; "" for someone outside the school."""
    grant = _new_api(
        config,
        "/v1.0/oauth2/userAccessToken",
        payload={
            "clientId": config.app_key,
            "clientSecret": config.app_secret,
            "code": auth_code,
            "grantType": "authorization_code",
        },
    )
    if not grant.get("accessToken"):
        raise ProviderError("bad-response", "no accessToken", retry=False)
    union_id = _new_api(config, "/v1.0/contact/users/me", token=grant["accessToken"]).get("unionId", "")
    if not union_id:
        return ""
    try:
        answer = _post(config, "/topapi/user/getbyunionid", {"unionid": union_id})
    except ProviderError as exc:
        if exc.code == "60121":  # 找不到该用户: a DingTalk user who is not a member of the school
            return ""
        raise
    result = answer.get("result") or {}
    # contact_type 1 is an external contact (外部联系人) of the school, not a member.
    if result.get("contact_type", 0) != 0:
        return ""
    return result.get("userid", "")


def userid_for_jsapi_code(config: Config, code: str) -> str:
    """The DingTalk userid behind an in-app 免登 code (``dd.runtime.permission.requestAuthCode``), not an authCode.

    No page of the portal asks DingTalk's JSAPI for such a code yet; the web OAuth callback uses
    ``userid_for_auth_code``.
    """
    answer = _post(config, "/topapi/v2/user/getuserinfo", {"code": code})
    return (answer.get("result") or {}).get("userid", "")
