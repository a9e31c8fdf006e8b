"""Tencent Cloud SMS (``SendSms``, API 2021-01-11) with the TC3-HMAC-SHA256 signature.

CanonicalRequest = method, ``/``, empty query, the signed headers
(``content-type`` and ``host``) and the hex SHA-256 of the payload; the string
to sign names the algorithm, the timestamp, ``date/sms/tc3_request`` and the
request's hash; the key is derived as HMAC("TC3" + key, date) → service →
``tc3_request``, as the official SDK does.
"""

import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from .http import ProviderError, request_json

ENDPOINT = "https://sms.tencentcloudapi.com/"
SERVICE = "sms"
VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"

RETRY_PREFIXES = (
    "InternalError",
    "RequestLimitExceeded",
    "LimitExceeded.PhoneNumberThirtySecondLimit",
    "LimitExceeded.PhoneNumberOneHourLimit",
    "LimitExceeded.PhoneNumberDailyLimit",
    "LimitExceeded.DeliveryFrequencyLimit",
    "FailedOperation.InsufficientBalanceInSmsPackage",
    "ResourceUnavailable",
)


@dataclass(frozen=True)
class Config:
    secret_id: str
    secret_key: str
    sdk_app_id: str  # SmsSdkAppId (1400…)
    sign_name: str
    template_id: str
    endpoint: str = ENDPOINT
    region: str = "ap-guangzhou"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    signing_key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def canonical_request(host: str, payload: bytes, *, content_type: str = CONTENT_TYPE) -> str:
    return "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )


def authorization(config: Config, host: str, payload: bytes, timestamp: int) -> str:
    date = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{SERVICE}/tc3_request"
    digest = hashlib.sha256(canonical_request(host, payload).encode()).hexdigest()
    string_to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{digest}"
    sign = tc3_signature(config.secret_key, date, SERVICE, string_to_sign)
    return f"TC3-HMAC-SHA256 Credential={config.secret_id}/{scope}, SignedHeaders=content-type;host, Signature={sign}"


def request_parts(config: Config, phone: str, variables: list[str], *, timestamp: int | None = None):
    """(payload, headers) of one SendSms call, signed."""
    timestamp = timestamp or int(datetime.datetime.now(datetime.UTC).timestamp())
    host = urlsplit(config.endpoint).netloc
    payload = json.dumps(
        {
            "PhoneNumberSet": [phone if phone.startswith("+") else f"+86{phone}"],
            "SmsSdkAppId": config.sdk_app_id,
            "SignName": config.sign_name,
            "TemplateId": config.template_id,
            "TemplateParamSet": [str(v) for v in variables],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    headers = {
        "Authorization": authorization(config, host, payload, timestamp),
        "Content-Type": CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": "SendSms",
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": VERSION,
        "X-TC-Region": config.region,
    }
    return payload, headers


def send(config: Config, phone: str, variables: list[str]) -> str:
    """Send one templated SMS (variables in the template's order); its SerialNo, or ``ProviderError``."""
    payload, headers = request_parts(config, phone, variables)
    answer = request_json(config.endpoint, method="POST", body=payload, headers=headers).get("Response", {})
    if "Error" in answer:
        code = answer["Error"].get("Code", "unknown")
        raise ProviderError(code, answer["Error"].get("Message", ""), retry=code.startswith(RETRY_PREFIXES))
    statuses = answer.get("SendStatusSet") or [{}]
    status = statuses[0]
    code = status.get("Code", "unknown")
    if code == "Ok":
        return status.get("SerialNo", "")
    raise ProviderError(code, status.get("Message", ""), retry=code.startswith(RETRY_PREFIXES))
