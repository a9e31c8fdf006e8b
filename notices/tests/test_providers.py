"""The platform clients: exact signatures (the documentation's own examples) and every answer mapped.

Each platform runs as a local fake server (notices/tests/fake_providers.py)
that recomputes the signature and checks the token and the template the way
the platform does.
"""

import pytest
from django.core.cache import cache

from notices.providers import aliyun_sms, dingtalk, tencent_sms, wecom
from notices.providers.http import ProviderError

from .fake_providers import ALIYUN, DINGTALK, TENCENT, WECOM, Fake


@pytest.fixture
def fake():
    cache.clear()
    with Fake() as server:
        yield server
    cache.clear()


# --- The documentation's examples -----------------------------------------------------------------


def test_aliyun_signature_reproduces_the_sms_documentation_example():
    params = {
        "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123",
        "PhoneNumbers": "15300000001", "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0", "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
    }  # fmt: skip
    assert aliyun_sms.signature(params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert aliyun_sms.percent_encode("a b*~/") == "a%20b%2A~%2F"


def test_tencent_tc3_reproduces_the_api_documentation_example():
    import hashlib

    # The CVM DescribeInstances example of Tencent Cloud's signature documentation.
    payload = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    canonical = tencent_sms.canonical_request("cvm.tencentcloudapi.com", payload)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    assert digest == "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    string_to_sign = f"TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n{digest}"
    signature = tencent_sms.tc3_signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "2019-02-25", "cvm", string_to_sign)
    assert signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


# --- Alibaba Cloud SMS against its fake ------------------------------------------------------------


def aliyun_config(fake, **changes):
    values = {"access_key_id": ALIYUN["id"], "access_key_secret": ALIYUN["secret"], "sign_name": ALIYUN["sign"],
              "template_code": ALIYUN["template"], "endpoint": fake.url + "/"} | changes  # fmt: skip
    return aliyun_sms.Config(**values)


VARIABLES = {"name": "王小明", "deadline": "12月22日", "link": "https://rollcheck.example.edu.cn/c/1"}


def test_aliyun_sends_a_signed_templated_message(fake):
    assert aliyun_sms.send(aliyun_config(fake), "13912345678", VARIABLES) == "900619746936498440^0"
    (request,) = fake.of("aliyun")
    assert request["ok"]
    assert request["params"]["PhoneNumbers"] == "13912345678"


@pytest.mark.parametrize(
    ("phone", "changes", "code", "retry"),
    [
        ("13800000001", {}, "isv.MOBILE_NUMBER_ILLEGAL", False),
        ("13800000002", {}, "isv.BUSINESS_LIMIT_CONTROL", True),
        ("13912345678", {"access_key_secret": "wrong"}, "SignatureDoesNotMatch", False),
        ("13912345678", {"template_code": "SMS_1"}, "isv.SMS_TEMPLATE_ILLEGAL", False),
    ],
)
def test_aliyun_errors_are_mapped_to_retry_or_give_up(fake, phone, changes, code, retry):
    with pytest.raises(ProviderError) as caught:
        aliyun_sms.send(aliyun_config(fake, **changes), phone, VARIABLES)
    assert (caught.value.code, caught.value.retry) == (code, retry)


def test_a_missing_template_variable_is_refused_by_the_platform(fake):
    with pytest.raises(ProviderError) as caught:
        aliyun_sms.send(aliyun_config(fake), "13912345678", {"name": "王小明"})
    assert caught.value.code == "isv.TEMPLATE_MISSING_PARAMETERS"


def test_an_unreachable_platform_is_worth_retrying():
    config = aliyun_sms.Config("a", "b", "c", "d", endpoint="http://127.0.0.1:9/")
    with pytest.raises(ProviderError) as caught:
        aliyun_sms.send(config, "13912345678", VARIABLES)
    assert caught.value.retry


# --- Tencent Cloud SMS against its fake ------------------------------------------------------------


def tencent_config(fake, **changes):
    values = {"secret_id": TENCENT["id"], "secret_key": TENCENT["key"], "sdk_app_id": TENCENT["app"],
              "sign_name": TENCENT["sign"], "template_id": TENCENT["template"], "endpoint": fake.url + "/"} | changes  # fmt: skip
    return tencent_sms.Config(**values)


def test_tencent_sends_a_signed_templated_message(fake):
    serial = tencent_sms.send(tencent_config(fake), "13912345678", ["王小明", "12月22日", "https://x.example/c/1"])
    assert serial.startswith("5000:")
    (request,) = fake.of("tencent")
    assert request["ok"]
    assert request["body"]["PhoneNumberSet"] == ["+8613912345678"]


@pytest.mark.parametrize(
    ("phone", "changes", "code", "retry"),
    [
        ("13800000001", {}, "InvalidParameterValue.IncorrectPhoneNumber", False),
        ("13800000002", {}, "LimitExceeded.PhoneNumberThirtySecondLimit", True),
        ("13912345678", {"secret_key": "wrong"}, "AuthFailure.SignatureFailure", False),
        ("13912345678", {"template_id": "9"}, "FailedOperation.TemplateIncorrectOrUnapproved", False),
    ],
)
def test_tencent_errors_are_mapped_to_retry_or_give_up(fake, phone, changes, code, retry):
    with pytest.raises(ProviderError) as caught:
        tencent_sms.send(tencent_config(fake, **changes), phone, ["王小明", "12月22日", "https://x.example/c/1"])
    assert (caught.value.code, caught.value.retry) == (code, retry)


# --- WeCom and DingTalk against their fakes ----------------------------------------------------------


def wecom_config(fake, **changes):
    return wecom.Config(
        **({"corp_id": WECOM["corp"], "agent_id": WECOM["agent"], "secret": WECOM["secret"], "api": fake.url} | changes)
    )


def dingtalk_config(fake, **changes):
    values = {
        "app_key": DINGTALK["key"],
        "app_secret": DINGTALK["secret"],
        "agent_id": DINGTALK["agent"],
        "api": fake.url,
        "new_api": fake.url,
    }
    return dingtalk.Config(**(values | changes))


CARD = {"title": "学籍核对提醒", "description": "请在12月22日前完成核对", "url": "https://x.example/check/1"}


def test_wecom_caches_its_token_and_sends_textcards(fake):
    config = wecom_config(fake)
    wecom.send_textcard(config, "2025000001", **CARD)
    wecom.send_textcard(config, "2025000002", **CARD)
    assert [r["path"] for r in fake.of("wecom")] == ["gettoken", "message/send", "message/send"]
    assert [r["body"]["touser"] for r in fake.of("wecom") if r.get("ok")] == ["2025000001", "2025000002"]


def test_wecom_fetches_a_new_token_when_the_old_one_expired(fake):
    config = wecom_config(fake)
    wecom.send_textcard(config, "2025000001", **CARD)
    fake.expire_next_token_use = True
    wecom.send_textcard(config, "2025000002", **CARD)
    assert [r["path"] for r in fake.of("wecom")] == [
        "gettoken",
        "message/send",
        "message/send",
        "gettoken",
        "message/send",
    ]


@pytest.mark.parametrize(("userid", "code", "retry"), [("ghost", "81013", False), ("busy", "45009", True)])
def test_wecom_errors_are_mapped(fake, userid, code, retry):
    with pytest.raises(ProviderError) as caught:
        wecom.send_textcard(wecom_config(fake), userid, **CARD)
    assert (caught.value.code, caught.value.retry) == (code, retry)


def test_a_wrong_wecom_secret_never_gets_a_token(fake):
    with pytest.raises(ProviderError) as caught:
        wecom.send_textcard(wecom_config(fake, secret="wrong"), "2025000001", **CARD)
    assert caught.value.code == "40013"


def test_wecom_sign_in_codes_resolve_to_userids(fake):
    config = wecom_config(fake)
    assert wecom.userid_for_code(config, "user:2025000001") == "2025000001"
    assert wecom.userid_for_code(config, "outsider") == ""
    with pytest.raises(ProviderError):
        wecom.userid_for_code(config, "forged")
    assert "appid=ww0000fakecorp" in wecom.authorize_url(config, "https://x.example/cb", "s1")


def test_dingtalk_sends_work_notifications_with_a_cached_token(fake):
    config = dingtalk_config(fake)
    assert dingtalk.send_action_card(config, "2025000001", title="提醒", markdown="请核对", url="https://x.example/1")
    dingtalk.send_action_card(config, "2025000002", title="提醒", markdown="请核对", url="https://x.example/1")
    assert [r["path"] for r in fake.of("dingtalk")] == ["gettoken", "asyncsend_v2", "asyncsend_v2"]


@pytest.mark.parametrize(("userid", "code", "retry"), [("ghost", "60121", False), ("busy", "90018", True)])
def test_dingtalk_errors_are_mapped(fake, userid, code, retry):
    with pytest.raises(ProviderError) as caught:
        dingtalk.send_action_card(dingtalk_config(fake), userid, title="t", markdown="m", url="https://x.example/1")
    assert (caught.value.code, caught.value.retry) == (code, retry)


def test_dingtalk_in_app_jsapi_codes_resolve_to_userids(fake):
    assert dingtalk.userid_for_jsapi_code(dingtalk_config(fake), "user:2025000009") == "2025000009"
    with pytest.raises(ProviderError):
        dingtalk.userid_for_jsapi_code(dingtalk_config(fake), "forged")


def test_dingtalk_web_oauth_auth_codes_resolve_to_userids_through_the_new_api(fake):
    config = dingtalk_config(fake)
    assert dingtalk.userid_for_auth_code(config, "user:2025000009") == "2025000009"
    assert dingtalk.userid_for_auth_code(config, "outsider") == ""  # 60121: not a member of the school
    assert dingtalk.userid_for_auth_code(config, "external:2025000010") == ""  # an external contact
    with pytest.raises(ProviderError) as caught:
        dingtalk.userid_for_auth_code(config, "user:2025000009")  # an authCode is good once
    assert (caught.value.code, caught.value.retry) == ("invalidParameter.authCode.notFound", False)
    # The 免登 API is not used for an authCode.
    assert "getuserinfo" not in [r["path"] for r in fake.of("dingtalk")]
