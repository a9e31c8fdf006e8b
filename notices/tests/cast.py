"""Builders shared by the notices page tests (plain functions; fixtures stay in each module)."""

import re

from django.utils import timezone

from notices import services
from notices.models import Notice


def html(response) -> str:
    return response.content.decode()


def text(page: str) -> str:
    """Visible text with tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)).strip()


def notice_published(
    *, title="关于开展2025级新生学籍核对的通知", body="请在截止前完成核对。", cohorts=(), departments=(), **kw
):
    notice = Notice.objects.create(title=title, body=body, published_at=timezone.now(), **kw)
    notice.cohorts.set(cohorts)
    notice.departments.set(departments)
    return services.notice_publish(notice=notice)


def table(page: str, table_id: str) -> list[list[str]]:
    """The rows of one table as lists of cell texts."""
    match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', page, re.S)
    assert match, f"no table {table_id}"
    body = re.search(r"<tbody>(.*?)</tbody>", match.group(), re.S).group(1)
    return [
        [text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]
