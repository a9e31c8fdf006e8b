"""Alibaba Cloud SMS (短信服务, dysmsapi ``SendSms``) with the RPC signature, version 1.0 (HMAC-SHA1).

The canonical query is every parameter but ``Signature``, sorted by name,
each name and value percent-encoded as RFC 3986 says (space ``%20``, ``*``
``%2A``, ``~`` kept); the string to sign is ``GET&%2F&`` + the encoded query;
the key is the AccessKey secret followed by ``&``.
"""

import base64
import datetime
import hashlib
import hmac
import json
import urllib.parse
import uuid
from dataclasses import dataclass

from .http import ProviderError, request_json

ENDPOINT = "https://dysmsapi.aliyuncs.com/"

# Error codes (Code) after which the same message may go through later; all others are final.
RETRY_CODES = {
    "isv.BUSINESS_LIMIT_CONTROL",  # per-number rate limit (1/min, 5/h, 10/day by default)
    "isv.DAY_LIMIT_CONTROL",
    "isv.AMOUNT_NOT_ENOUGH",  # the school's balance: an operator tops it up
    "isp.SYSTEM_ERROR",
    "isp.RAM_PERMISSION_DENY",
    "SignatureNonceUsed",
    "Throttling.User",
    "ServiceUnavailable",
}
# Codes that mean the configuration, not the student, is wrong: final for this message too.
CONFIG_CODES = {"SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "isv.SMS_SIGNATURE_ILLEGAL",
                "isv.SMS_TEMPLATE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.TEMPLATE_PARAMS_ILLEGAL"}  # fmt: skip


@dataclass(frozen=True)
class Config:
    access_key_id: str
    access_key_secret: str
    sign_name: str  # 短信签名, approved by Alibaba
    template_code: str  # SMS_…, approved by Alibaba
    endpoint: str = ENDPOINT
    region: str = "cn-hangzhou"


def percent_encode(text: str) -> str:
    return urllib.parse.quote(str(text), safe="~")


def canonical_query(params: dict) -> str:
    return "&".join(
        f"{percent_encode(key)}={percent_encode(value)}" for key, value in sorted(params.items()) if key != "Signature"
    )


def signature(params: dict, secret: str, method: str = "GET") -> str:
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_params(config: Config, phone: str, variables: dict, *, now=None, nonce=None) -> dict:
    now = now or datetime.datetime.now(datetime.UTC)
    params = {
        "AccessKeyId": config.access_key_id,
        "Action": "SendSms",
        "Format": "JSON",
        "PhoneNumbers": phone,
        "RegionId": config.region,
        "SignName": config.sign_name,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": nonce or str(uuid.uuid4()),
        "SignatureVersion": "1.0",
        "TemplateCode": config.template_code,
        "TemplateParam": json.dumps(variables, ensure_ascii=False, separators=(",", ":")),
        "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Version": "2017-05-25",
    }
    params["Signature"] = signature(params, config.access_key_secret)
    return params


def send(config: Config, phone: str, variables: dict) -> str:
    """Send one templated SMS; the platform's BizId on success, ``ProviderError`` otherwise."""
    params = signed_params(config, phone, variables)
    query = "Signature=" + percent_encode(params["Signature"]) + "&" + canonical_query(params)
    answer = request_json(f"{config.endpoint}?{query}")
    code = answer.get("Code", "")
    if code == "OK":
        return answer.get("BizId", "")
    raise ProviderError(code or "unknown", answer.get("Message", ""), retry=code in RETRY_CODES)
