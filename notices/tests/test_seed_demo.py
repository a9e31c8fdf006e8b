"""``seed_demo`` (run by bin/start) leaves a newcomer a student to try the first sign-in with."""

import io
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from students.models import Student

pytestmark = pytest.mark.django_db

CLAIMABLE = re.compile(r"学号 (\S+)  姓名 (\S+)  证件号码后 6 位 (\S{6})")


def seed(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_the_demo_prints_a_student_who_can_claim_an_account_and_the_claim_works(client):
    printed = CLAIMABLE.search(seed("--students", "40"))
    assert printed, "seed_demo names a claimable student"
    number, name, suffix = printed.groups()
    student = Student.objects.get(student_number=number)
    assert (student.name, student.user) == (name, None)
    assert student.checklists.filter(state="not_started").exists()  # there is a check waiting for them

    response = client.post(reverse("claim"), {"student_number": number, "name": name, "id_suffix": suffix})

    assert response.status_code == 302 and response["Location"] == reverse("claim_password")


def test_bin_start_names_one_again_on_a_database_already_seeded():
    seed("--students", "40")

    printed = CLAIMABLE.search(seed("--claimable"))

    assert printed and Student.objects.get(student_number=printed[1]).user is None
