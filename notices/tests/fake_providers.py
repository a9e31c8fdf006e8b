"""Local fake servers of the messaging platforms, checking each request as the platform would.

Each fake recomputes the request's signature from the documented algorithm
(written independently of ``notices.providers``), checks the token, the
template and its variables, and answers with the platform's real success and
error bodies.  Phone numbers and user ids choose the answer (see ``OUTCOMES``).
"""

import base64
import datetime
import hashlib
import hmac
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALIYUN = {"id": "LTAI5tFakeKeyId", "secret": "fakeAliyunSecret", "sign": "示范大学", "template": "SMS_480010001"}
TENCENT = {
    "id": "AKIDfakeSecretId",
    "key": "fakeTencentKey",
    "app": "1400000001",
    "sign": "示范大学",
    "template": "2000001",
}
WECOM = {"corp": "ww0000fakecorp", "agent": 1000002, "secret": "fake-wecom-secret"}
DINGTALK = {"key": "dingfakeappkey", "secret": "fake-dingtalk-secret", "agent": 3000001}

# Phone numbers / user ids the fakes answer with an error.
OUTCOMES = {
    "13800000001": "invalid",  # a number the platform refuses: final
    "13800000002": "limited",  # rate limited: try later
    "ghost": "invalid",  # a user that does not exist
    "busy": "limited",
}


def _rfc3986(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.~")


class Fake:
    """One server for all four platforms; ``requests`` records what each received."""

    def __init__(self):
        self.requests: list[dict] = []
        self.tokens: dict[str, str] = {}
        self.expire_next_token_use = False
        self.user_tokens: dict[str, str] = {}  # DingTalk user access token -> the authCode it was granted for
        self.used_auth_codes: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # shutdown() waits up to one poll interval: the default 0.5 s cost every test that much.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def of(self, platform: str) -> list[dict]:
        return [r for r in self.requests if r["platform"] == platform]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: dict, status: int = 200):
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                if query.get("Action") == "SendSms":
                    return self._answer(fake.aliyun(parts.query, query))
                if parts.path == "/cgi-bin/gettoken":
                    return self._answer(
                        fake.token(
                            "wecom", query.get("corpid") == WECOM["corp"] and query.get("corpsecret") == WECOM["secret"]
                        )
                    )
                if parts.path == "/gettoken":
                    return self._answer(
                        fake.token(
                            "dingtalk",
                            query.get("appkey") == DINGTALK["key"] and query.get("appsecret") == DINGTALK["secret"],
                        )
                    )
                if parts.path == "/v1.0/contact/users/me":
                    return self._answer(*fake.dingtalk_me(dict(self.headers)))
                if parts.path == "/cgi-bin/auth/getuserinfo":
                    return self._answer(fake.wecom_userinfo(query))
                if parts.path == "/connect/oauth2/authorize":
                    location = fake.wecom_authorize(query)
                    if location is None:
                        return self._answer({"errcode": 40029, "errmsg": "invalid oauth request"}, 400)
                    self.send_response(302)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self._answer({"error": "not found"}, 404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                if self.headers.get("X-TC-Action") == "SendSms":
                    return self._answer(fake.tencent(dict(self.headers), body))
                if parts.path == "/cgi-bin/message/send":
                    return self._answer(fake.wecom_send(query, json.loads(body)))
                if parts.path == "/topapi/message/corpconversation/asyncsend_v2":
                    return self._answer(fake.dingtalk_send(query, json.loads(body)))
                if parts.path == "/v1.0/oauth2/userAccessToken":
                    return self._answer(*fake.dingtalk_user_token(dict(self.headers), body))
                if parts.path == "/topapi/user/getbyunionid":
                    return self._answer(fake.dingtalk_getbyunionid(query, json.loads(body)))
                if parts.path == "/topapi/v2/user/getuserinfo":
                    return self._answer(fake.dingtalk_userinfo(query, json.loads(body)))
                self._answer({"error": "not found"}, 404)

        return Handler

    # --- Alibaba Cloud -----------------------------------------------------------------------------

    def aliyun(self, raw_query: str, query: dict) -> dict:
        request = {"platform": "aliyun", "params": query}
        self.requests.append(request)
        pairs = sorted((k, v) for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True) if k != "Signature")
        canonical = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in pairs)
        to_sign = "GET&%2F&" + _rfc3986(canonical)
        expected = base64.b64encode(
            hmac.new((ALIYUN["secret"] + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
        ).decode()
        if query.get("AccessKeyId") != ALIYUN["id"]:
            return {
                "Code": "InvalidAccessKeyId.NotFound",
                "Message": "Specified access key is not found.",
                "RequestId": "r1",
            }
        if query.get("Signature") != expected:
            return {
                "Code": "SignatureDoesNotMatch",
                "Message": "Specified signature is not matched with our calculation.",
                "RequestId": "r2",
            }
        if query.get("SignName") != ALIYUN["sign"]:
            return {"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "签名不合法", "RequestId": "r3"}
        if query.get("TemplateCode") != ALIYUN["template"]:
            return {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法", "RequestId": "r4"}
        variables = json.loads(query.get("TemplateParam") or "{}")
        if set(variables) != {"name", "deadline", "link"}:
            return {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": "模板变量缺少对应参数值", "RequestId": "r5"}
        request["ok"] = True
        outcome = OUTCOMES.get(query.get("PhoneNumbers"))
        if outcome == "invalid":
            return {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "r6"}
        if outcome == "limited":
            return {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1", "RequestId": "r7"}
        return {
            "Code": "OK",
            "Message": "OK",
            "BizId": "900619746936498440^0",
            "RequestId": "F655A8D5-B967-440B-8683-DAD6FF8DE990",
        }

    # --- Tencent Cloud -----------------------------------------------------------------------------

    def tencent(self, headers: dict, body: bytes) -> dict:
        headers = {k.lower(): v for k, v in headers.items()}
        request = {"platform": "tencent", "headers": headers, "body": json.loads(body)}
        self.requests.append(request)
        timestamp = int(headers.get("x-tc-timestamp", "0"))
        date = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d")
        canonical = (
            f"POST\n/\n\ncontent-type:{headers.get('content-type')}\nhost:{headers.get('host')}\n\n"
            f"content-type;host\n{hashlib.sha256(body).hexdigest()}"
        )
        to_sign = (
            f"TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = ("TC3" + TENCENT["key"]).encode()
        for part in (date, "sms", "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        expected = (
            f"TC3-HMAC-SHA256 Credential={TENCENT['id']}/{date}/sms/tc3_request, "
            f"SignedHeaders=content-type;host, Signature={signature}"
        )
        error = None
        if headers.get("authorization") != expected:
            error = (
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature is correct.",
            )
        elif abs(timestamp - datetime.datetime.now(datetime.UTC).timestamp()) > 300:
            error = ("AuthFailure.SignatureExpire", "Signature expired.")
        elif headers.get("x-tc-version") != "2021-01-11":
            error = ("InvalidParameter", "version")
        payload = request["body"]
        if not error and (
            payload.get("SmsSdkAppId") != TENCENT["app"]
            or payload.get("TemplateId") != TENCENT["template"]
            or payload.get("SignName") != TENCENT["sign"]
        ):
            error = ("FailedOperation.TemplateIncorrectOrUnapproved", "template is not approved or not exist")
        if not error and len(payload.get("TemplateParamSet", [])) != 3:
            error = (
                "InvalidParameterValue.TemplateParameterFormatError",
                "Verification code template parameter format error",
            )
        if error:
            return {"Response": {"Error": {"Code": error[0], "Message": error[1]}, "RequestId": "a0aabda6"}}
        request["ok"] = True
        phone = payload["PhoneNumberSet"][0]
        outcome = OUTCOMES.get(phone.removeprefix("+86"))
        code, message = {"invalid": ("InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number"),
                         "limited": ("LimitExceeded.PhoneNumberThirtySecondLimit", "the number of sms messages sent from a single mobile number within 30 seconds exceeds the upper limit")}.get(outcome, ("Ok", "send success"))  # fmt: skip
        return {"Response": {"SendStatusSet": [{"SerialNo": "5000:1045710669157053657849499619", "PhoneNumber": phone, "Fee": 1,
                                                "SessionContext": "", "Code": code, "Message": message, "IsoCode": "CN"}],
                             "RequestId": "a0aabda6-cf91-4f3e-a81f-9198114a2279"}}  # fmt: skip

    # --- WeCom and DingTalk --------------------------------------------------------------------------

    def token(self, platform: str, valid: bool) -> dict:
        self.requests.append({"platform": platform, "path": "gettoken"})
        if not valid:
            return {"errcode": 40013 if platform == "wecom" else 40089, "errmsg": "invalid corpid"}
        token = f"{platform}-token-{len(self.requests)}"
        self.tokens[platform] = token
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}

    def _token_ok(self, platform: str, query: dict) -> bool:
        if self.expire_next_token_use:
            self.expire_next_token_use = False
            self.tokens.pop(platform, None)  # WeCom expired it early
        return query.get("access_token") == self.tokens.get(platform) and bool(self.tokens.get(platform))

    def wecom_send(self, query: dict, body: dict) -> dict:
        request = {"platform": "wecom", "path": "message/send", "body": body}
        self.requests.append(request)
        if not self._token_ok("wecom", query):
            return {"errcode": 42001, "errmsg": "access_token expired"}
        card = body.get("textcard") or {}
        if (
            body.get("msgtype") != "textcard"
            or body.get("agentid") != WECOM["agent"]
            or not card.get("url", "").startswith("http")
        ):
            return {"errcode": 40008, "errmsg": "invalid message type"}
        request["ok"] = True
        outcome = OUTCOMES.get(body.get("touser"))
        if outcome == "invalid":
            return {"errcode": 81013, "errmsg": "user & party & tag all invalid"}
        if outcome == "limited":
            return {"errcode": 45009, "errmsg": "api freq out of limit"}
        return {"errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "", "invalidtag": "", "msgid": "xxxx"}

    # The member signed in to the WeCom app whose browser asks for OAuth (网页授权); None: nobody.
    wecom_member: str | None = None

    def wecom_authorize(self, query: dict) -> str | None:
        """WeCom's OAuth page with ``snsapi_base``: silent, straight back to ``redirect_uri`` with a code."""
        self.requests.append({"platform": "wecom", "path": "authorize", "query": query})
        if (
            query.get("appid") != WECOM["corp"]
            or query.get("agentid") != str(WECOM["agent"])
            or query.get("response_type") != "code"
            or query.get("scope") != "snsapi_base"
            or not query.get("redirect_uri", "").startswith("http")
            or self.wecom_member is None
        ):
            return None
        back = query["redirect_uri"]
        code = urllib.parse.urlencode({"code": f"user:{self.wecom_member}", "state": query.get("state", "")})
        return back + ("&" if "?" in back else "?") + code

    def wecom_userinfo(self, query: dict) -> dict:
        self.requests.append({"platform": "wecom", "path": "getuserinfo", "code": query.get("code")})
        if not self._token_ok("wecom", query):
            return {"errcode": 42001, "errmsg": "access_token expired"}
        code = query.get("code", "")
        if code.startswith("user:"):
            return {"errcode": 0, "errmsg": "ok", "userid": code[5:], "user_ticket": "t"}
        if code.startswith("outsider"):
            return {"errcode": 0, "errmsg": "ok", "openid": "oX2ghjkl"}
        return {"errcode": 40029, "errmsg": "invalid code"}

    def dingtalk_send(self, query: dict, body: dict) -> dict:
        request = {"platform": "dingtalk", "path": "asyncsend_v2", "body": body}
        self.requests.append(request)
        if not self._token_ok("dingtalk", query):
            return {"errcode": 88, "errmsg": "不合法的access_token"}
        card = (body.get("msg") or {}).get("action_card") or {}
        if body.get("agent_id") != DINGTALK["agent"] or not card.get("single_url", "").startswith("http"):
            return {"errcode": 33012, "errmsg": "无效的agentid或消息"}
        request["ok"] = True
        outcome = OUTCOMES.get(body.get("userid_list"))
        if outcome == "limited":
            return {"errcode": 90018, "errmsg": "请求过于频繁"}
        if outcome == "invalid":
            return {"errcode": 60121, "errmsg": "找不到该用户"}
        return {"errcode": 0, "errmsg": "ok", "task_id": 256271667526, "request_id": "4jzllmte0wau"}

    def dingtalk_userinfo(self, query: dict, body: dict) -> dict:
        self.requests.append({"platform": "dingtalk", "path": "getuserinfo"})
        if not self._token_ok("dingtalk", query):
            return {"errcode": 88, "errmsg": "不合法的access_token"}
        code = body.get("code", "")
        if code.startswith("user:"):
            return {"errcode": 0, "errmsg": "ok", "result": {"userid": code[5:], "name": "x"}, "request_id": "r"}
        return {"errcode": 40078, "errmsg": "不存在的临时授权码"}

    # --- DingTalk's web OAuth (new API, api.dingtalk.com) ------------------------------------------------
    # The authCode the OAuth page returns names who signed in: "user:<userid>" a member of the school,
    # "external:<userid>" an external contact (外部联系人), "outsider" a DingTalk user outside the school;
    # anything else is not a code DingTalk issued.  A code is good once, as at DingTalk.

    def _new_api_error(self, status: int, code: str, message: str) -> tuple[dict, int]:
        return {"code": code, "message": message, "requestid": "9D0A5E6C-7F3B-4A39-9E8F-1C2D3E4F5A6B"}, status

    def dingtalk_user_token(self, headers: dict, raw: bytes) -> tuple[dict, int]:
        headers = {k.lower(): v for k, v in headers.items()}
        body = json.loads(raw or b"{}")
        self.requests.append({"platform": "dingtalk", "path": "userAccessToken", "body": body})
        if headers.get("content-type", "").split(";")[0] != "application/json":
            return self._new_api_error(400, "MissingParameter", "body is not JSON")
        if set(body) != {"clientId", "clientSecret", "code", "grantType"} or body["grantType"] != "authorization_code":
            return self._new_api_error(400, "MissingParameter", "clientId/clientSecret/code/grantType")
        if body["clientId"] != DINGTALK["key"] or body["clientSecret"] != DINGTALK["secret"]:
            return self._new_api_error(400, "invalidClientSecret", "不合法的clientSecret")
        code = body["code"]
        if code in self.used_auth_codes or not (code.startswith(("user:", "external:")) or code == "outsider"):
            return self._new_api_error(400, "invalidParameter.authCode.notFound", "不合法的临时授权码")
        self.used_auth_codes.add(code)
        token = f"dingtalk-user-token-{len(self.requests)}"
        self.user_tokens[token] = code
        return {"accessToken": token, "refreshToken": "r-" + token, "expireIn": 7200, "corpId": "dingfakecorp"}, 200

    def dingtalk_me(self, headers: dict) -> tuple[dict, int]:
        headers = {k.lower(): v for k, v in headers.items()}
        token = headers.get("x-acs-dingtalk-access-token", "")
        self.requests.append({"platform": "dingtalk", "path": "users/me", "token": token})
        code = self.user_tokens.get(token)
        if code is None:
            return self._new_api_error(401, "InvalidAuthentication", "不合法的access_token")
        who = code.split(":", 1)[-1]
        return {"nick": "王梓萱", "unionId": f"union-{who}", "openId": f"open-{who}", "stateCode": "86"}, 200

    def dingtalk_getbyunionid(self, query: dict, body: dict) -> dict:
        self.requests.append({"platform": "dingtalk", "path": "getbyunionid", "body": body})
        if not self._token_ok("dingtalk", query):
            return {"errcode": 88, "errmsg": "不合法的access_token"}
        union_id = body.get("unionid", "")
        codes = self.user_tokens.values()
        member = next((c for c in codes if c.split(":", 1)[-1] == union_id.removeprefix("union-")), None)
        if set(body) != {"unionid"} or member is None or member == "outsider":
            return {"errcode": 60121, "errmsg": "找不到该用户", "request_id": "r"}
        contact_type = 1 if member.startswith("external:") else 0
        userid = member.split(":", 1)[1]
        return {
            "errcode": 0,
            "errmsg": "ok",
            "result": {"contact_type": contact_type, "userid": userid},
            "request_id": "r",
        }
