"""students.downloads: the one way a private file reaches a browser."""

import pytest
from django.http import Http404

from students.downloads import private_file_response


def test_a_private_file_is_an_uncached_attachment_with_its_chinese_name(tmp_path):
    path = tmp_path / "stored-name"
    path.write_bytes(b"PK\x03\x04 workbook")

    response = private_file_response(path, filename="化工2501-核对登记表.xlsx", content_type="application/x-test")

    assert b"".join(response.streaming_content) == b"PK\x03\x04 workbook"
    assert response["Content-Type"] == "application/x-test"
    assert response["Content-Disposition"] == (
        'attachment; filename="__2501-_____.xlsx"; '
        "filename*=UTF-8''%E5%8C%96%E5%B7%A52501-%E6%A0%B8%E5%AF%B9%E7%99%BB%E8%AE%B0%E8%A1%A8.xlsx"
    )
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_bytes_are_served_like_a_file_and_header_breaking_names_are_defused():
    response = private_file_response(b"decrypted", filename='a"b\r\nSet-Cookie: x.txt')

    assert b"".join(response.streaming_content) == b"decrypted"
    assert response["Content-Type"] == "application/octet-stream"
    assert "\n" not in response["Content-Disposition"]
    assert response["Content-Disposition"].startswith('attachment; filename="a_bSet-Cookie: x.txt"; ')


def test_a_file_that_is_gone_is_not_found(tmp_path):
    with pytest.raises(Http404):
        private_file_response(tmp_path / "deleted", filename="x.png")
