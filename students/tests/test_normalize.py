"""Normalisation of cell values before they are stored or compared."""

import datetime

import pytest

from students import normalize as n


def test_full_width_digits_letters_and_punctuation_become_half_width():
    assert n.to_halfwidth("２００６－０３－１４") == "2006-03-14"
    assert n.to_halfwidth("ＡＢｃ１．５／：") == "ABc1.5/:"


def test_chsi_brackets_and_chinese_text_stay_as_they_are():
    assert n.clean_text("在籍（注册学籍）") == "在籍（注册学籍）"
    assert n.clean_text("系（所、函授站）") == "系（所、函授站）"


def test_surrounding_and_ideographic_spaces_are_removed():
    assert n.clean_text("\u3000 计算机学院 \t") == "计算机学院"
    assert n.compact(" 张 三\u3000") == "张三"
    assert n.clean_text(None) == ""


def test_whole_number_from_a_number_cell_has_no_decimal_point():
    # Excel number cells arrive as floats: a phone number must not become "13800000000.0".
    assert n.clean_text(13800000000.0) == "13800000000"
    assert n.compact(10217.0) == "10217"
    assert n.clean_text(2.5) == "2.5"


@pytest.mark.parametrize(
    "raw", ["11010519491231002x", "11010519491231002X", "１１０１０５１９４９１２３１００２ｘ", " 110105 19491231002x "]
)
def test_id_number_lower_case_x_and_full_width(raw):
    assert n.normalise_id_number(raw) == "11010519491231002X"


def test_identifier_keeps_leading_zeros_and_upper_cases_letters():
    assert n.normalise_identifier(" ０２０２５ab ") == "02025AB"


@pytest.mark.parametrize(
    "raw",
    [
        "20060314",
        "2006-03-14",
        "2006-3-14",
        "2006/03/14",
        "2006年03月14日",
        "2006年3月14日",
        "２００６年０３月１４日",
        " 20060314 ",
        datetime.date(2006, 3, 14),
        datetime.datetime(2006, 3, 14, 0, 0),
        38790,  # Excel serial number of a date cell that lost its format
        38790.0,
        20060314,  # YYYYMMDD typed into a number cell
    ],
)
def test_every_date_spelling_reads_the_same_day(raw):
    assert n.parse_date(raw) == datetime.date(2006, 3, 14)


@pytest.mark.parametrize("raw", ["2006-02-30", "20061314", "明天", "14/03/2006", "2006.3"])
def test_unreadable_dates_raise_a_message_naming_the_value(raw):
    with pytest.raises(ValueError) as caught:
        n.parse_date(raw)
    assert "无法识别的日期" in str(caught.value)


def test_empty_date_is_none():
    assert n.parse_date("") is None
    assert n.parse_date(None) is None
    assert n.parse_date("  ") is None


def test_chsi_date_display():
    assert n.format_chsi_date(datetime.date(2017, 8, 28)) == "2017年08月28日"
    assert n.format_chsi_date(None) == ""


@pytest.mark.parametrize("raw", ["4", "4 年", "4年", "４年", 4, 4.0, "4.0"])
def test_duration_spellings(raw):
    assert n.normalise_duration(raw) == "4"


def test_half_year_duration_and_bad_duration():
    assert n.normalise_duration("2.5 年") == "2.5"
    assert n.normalise_duration("") == ""
    with pytest.raises(ValueError, match="学制应为数字"):
        n.normalise_duration("四年")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("崩龙族", "德昂族"),
        ("毛难族", "毛南族"),
        ("汉族", "汉族"),
        ("汉", "汉族"),
        ("柯尔克孜", "柯尔克孜族"),
        (" 乌孜别克 ", "乌孜别克族"),
        ("其他", "其他"),
    ],
)
def test_ethnic_names(raw, expected):
    assert n.normalise_ethnicity(raw) == expected
    assert n.is_known_ethnicity(n.normalise_ethnicity(raw))


def test_unknown_ethnic_name_is_kept_and_not_known():
    assert n.normalise_ethnicity("穿青人") == "穿青人"
    assert not n.is_known_ethnicity("穿青人")
    assert len(n.ETHNIC_GROUPS) == 56


@pytest.mark.parametrize(("raw", "expected"), [("1", "男"), ("2", "女"), ("男", "男"), (" 女 ", "女"), ("男性", "男")])
def test_gender_codes(raw, expected):
    assert n.normalise_gender(raw) == expected


def test_old_education_category_spelling():
    assert n.normalise_education_category("普通") == "普通高等教育"
    assert n.normalise_education_category("成人高等教育") == "成人高等教育"


def test_major_direction_in_brackets_is_dropped_for_comparison():
    assert n.strip_major_brackets("软件工程（嵌入式方向）") == "软件工程"
    assert n.strip_major_brackets("软件工程(嵌入式方向)") == "软件工程"
