import pytest

pytestmark = pytest.mark.django_db


def test_secretary_cannot_open_another_departments_student(client, secretary, other_student):
    client.force_login(secretary)
    assert client.get(f"/students/{other_student.pk}/").status_code == 404
