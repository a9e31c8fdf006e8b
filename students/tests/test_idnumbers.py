"""证件号码 checks (docs/domain.md §4): check digit, 15-digit numbers, permits, passports."""

import datetime

import pytest
from stdnum.cn import ric

from students import idnumbers
from students.idnumbers import IdType, check_id_number

TODAY = datetime.date(2025, 9, 15)

# Checked by hand in docs/domain.md §4.1.
VALID_NUMBERS = ["11010519491231002X", "440308199901101512", "810000199408230021", "830000199201300022"]


def codes(problems):
    return [p.code for p in problems]


@pytest.mark.parametrize("number", VALID_NUMBERS)
def test_domain_examples_have_the_right_check_digit(number):
    assert idnumbers.check_digit(number[:17]) == number[17]


@pytest.mark.parametrize("number", VALID_NUMBERS)
def test_domain_examples_raise_no_problem(number):
    assert check_id_number(number, IdType.RESIDENT, today=TODAY) == []


def test_check_digit_agrees_with_stdnum_on_mainland_numbers():
    for number in VALID_NUMBERS[:2]:
        assert ric.is_valid(number)
    # stdnum itself rejects the permits (no county code): the wrapper must not.
    assert not ric.is_valid("810000199408230021")


@pytest.mark.parametrize("number", VALID_NUMBERS)
def test_a_wrong_check_digit_is_reported_with_the_right_one(number):
    right = number[17]
    wrong = "0" if right != "0" else "1"
    problems = check_id_number(number[:17] + wrong, IdType.RESIDENT, today=TODAY)
    assert codes(problems) == ["id_checksum"]
    assert f"应为 {right}" in problems[0].message


def test_fifteen_digit_number_is_reported_and_upgrades_to_18_digits():
    assert idnumbers.upgrade_15_to_18("610104620927690") == "610104196209276908"
    problems = check_id_number("610104620927690", IdType.RESIDENT, today=TODAY)
    assert codes(problems) == ["id_15_digit"]
    assert "18 位" in problems[0].message and "610104" not in problems[0].message


def test_fifteen_digit_number_still_gives_birth_date_and_gender():
    assert idnumbers.birth_date_of("610104620927690") == datetime.date(1962, 9, 27)
    assert idnumbers.gender_of("610104620927690") == "女"


@pytest.mark.parametrize(
    ("number", "born", "gender"),
    [
        ("11010519491231002X", datetime.date(1949, 12, 31), "女"),
        ("440308199901101512", datetime.date(1999, 1, 10), "男"),
        ("810000199408230021", datetime.date(1994, 8, 23), "女"),
    ],
)
def test_birth_date_and_gender_digit(number, born, gender):
    assert idnumbers.birth_date_of(number) == born
    assert idnumbers.gender_of(number) == gender


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("810000199408230021", IdType.HKMO_PERMIT),
        ("820000199408230021", IdType.HKMO_PERMIT),
        ("830000199201300022", IdType.TW_PERMIT),
        ("440308199901101512", IdType.RESIDENT),
    ],
)
def test_residence_permits_are_recognised_by_their_prefix(number, expected):
    assert idnumbers.effective_id_type(IdType.RESIDENT, number) == expected


def test_residence_permit_with_wrong_check_digit_is_still_caught():
    assert codes(check_id_number("810000199408230022", IdType.RESIDENT, today=TODAY)) == ["id_checksum"]
    assert codes(check_id_number("830000199201300022", IdType.TW_PERMIT, today=TODAY)) == []


@pytest.mark.parametrize(
    ("number", "id_type"),
    [
        ("E12345678", IdType.PASSPORT),
        ("G12345678", IdType.PASSPORT),
        ("H12345678", IdType.HKMO_PASS),
        ("12345678", IdType.TW_PASS),
        # An 18-digit passport-like number must not be run through MOD 11-2.
        ("440308199901101510", IdType.PASSPORT),
    ],
)
def test_passports_and_passes_get_no_checksum_problem(number, id_type):
    assert check_id_number(number, id_type, today=TODAY) == []


def test_passport_with_impossible_characters_is_a_format_problem():
    assert codes(check_id_number("E1234-5678", IdType.PASSPORT, today=TODAY)) == ["id_format"]


def test_resident_id_of_wrong_length_is_a_format_problem():
    assert codes(check_id_number("4403081999011015", IdType.RESIDENT, today=TODAY)) == ["id_format"]


def test_impossible_birth_date_inside_the_id():
    body = "44030819990230151"
    problems = check_id_number(body + idnumbers.check_digit(body), IdType.RESIDENT, today=TODAY)
    assert codes(problems) == ["id_birth_date_invalid"]


def test_future_birth_date_inside_the_id():
    # stdnum accepts it; the wrapper does not.
    body = "44030820300110151"
    number = body + idnumbers.check_digit(body)
    assert ric.is_valid(number)
    assert codes(check_id_number(number, IdType.RESIDENT, today=TODAY)) == ["id_birth_date_future"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", IdType.RESIDENT), ("1", IdType.RESIDENT), ("身份证", IdType.RESIDENT), ("A", IdType.PASSPORT)],
)
def test_id_type_codes_and_short_names(raw, expected):
    assert idnumbers.normalise_id_type(raw) == expected


def test_unknown_id_type_is_refused():
    with pytest.raises(ValueError, match="未知的证件类型"):
        idnumbers.normalise_id_type("驾驶证")


def test_mask_shows_only_the_last_four():
    assert idnumbers.mask("11010519491231002X") == "**************002X"
    assert idnumbers.mask("") == ""
