"""The field registry: one description of every CHSI roll field."""

import datetime
from collections import Counter

import pytest

from students import fields
from students.fields import BY_CODE, BY_KEY, ROLL_FIELDS, Authority, StudentCheck, resolve_header
from students.models import Student

# Card order of 学信档案 → 学籍信息 (docs/domain.md §2.1).
CARD_LABELS = [
    "姓名", "性别", "出生日期", "民族", "证件号码", "学校名称", "层次", "专业", "学制", "学历类别", "学习形式",
    "分院", "系（所、函授站）", "班级", "学号", "入学日期", "预计毕业日期", "学籍状态",
]  # fmt: skip
# 主要字段 as a 2025 school notice lists them (docs/domain.md §2.3, §10.5).
MAIN_CODES = {"KSH", "XM", "XH", "XB", "CSRQ", "SFZH", "MZ", "SYD", "YXMC", "XJZT", "ZYMC", "XZ", "CC", "LQNF"}
MAIN_CODES |= {"XXXS", "XLLB"}
NON_MAIN_CODES = {"FY", "BH", "RXRQ", "XSH", "YJBYRQ"}


def test_every_key_is_a_student_model_field():
    model_fields = {f.name for f in Student._meta.get_fields()}
    missing = [f.key for f in ROLL_FIELDS if f.key not in model_fields]
    assert missing == []


def test_every_chsi_field_of_the_domain_is_in_the_registry():
    expected = {"KSH", "XH", "XM", "XB", "CSRQ", "SFZH", "MZ", "ZZMM", "ZYDM", "ZYMC", "FY", "XSH", "BH", "CC", "XZ"}
    expected |= {"XXXS", "RXRQ", "YJBYRQ", "XJZT", "XLLB", "YXDM", "YXMC", "ZJLX", "SYD", "LQNF"}
    assert {f.code for f in ROLL_FIELDS} == expected


def test_keys_codes_and_labels_are_unique():
    for values in ([f.key for f in ROLL_FIELDS], [f.code for f in ROLL_FIELDS], [str(f.label) for f in ROLL_FIELDS]):
        assert [v for v, count in Counter(values).items() if count > 1] == []


def test_no_header_alias_names_two_fields():
    owners = {}
    for f in ROLL_FIELDS:
        for name in (f.code, str(f.label), *f.aliases):
            owners.setdefault(fields._header_key(name), set()).add(f.key)
    assert {name: keys for name, keys in owners.items() if len(keys) > 1} == {}


def test_card_fields_in_chsi_card_order():
    assert [str(f.label) for f in fields.card_fields()] == CARD_LABELS


def test_main_and_non_main_fields():
    assert {f.code for f in ROLL_FIELDS if f.main} >= MAIN_CODES
    assert {f.code for f in ROLL_FIELDS if not f.main} == NON_MAIN_CODES | {"ZZMM"}


def test_required_fields_are_student_number_name_and_id_number():
    assert {f.code for f in ROLL_FIELDS if f.required} == {"XH", "XM", "SFZH"}


@pytest.mark.parametrize("f", ROLL_FIELDS, ids=lambda f: f.code)
def test_code_and_label_both_resolve(f):
    assert resolve_header(f.code) == f.key
    assert resolve_header(str(f.label)) == f.key
    assert resolve_header(f.code.lower()) == f.key


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("身份证号", "id_number"),
        ("身份证号码", "id_number"),
        ("证件号码", "id_number"),
        ("系（所、函授站）", "department_name"),
        ("系(所、函授站)", "department_name"),
        ("系所函授站", "department_name"),
        ("班级", "class_name"),
        ("班号", "class_name"),
        ("考生号", "exam_number"),
        ("学号", "student_number"),
        (" 学 号 ", "student_number"),
        ("ＸＨ", "student_number"),
        ("专业名称", "major_name"),
        ("学生所在分院(校)", "branch"),
        ("生源地", "origin_province"),
        ("手机号码", "phone"),
        ("电子邮箱", "email"),
    ],
)
def test_header_aliases(header, key):
    assert resolve_header(header) == key


@pytest.mark.parametrize("header", ["备注", "序号", "", None, "XHX"])
def test_unknown_headers_do_not_resolve(header):
    assert resolve_header(header) is None


def test_default_authority_follows_the_domain(settings):
    settings.ROLL_PROVINCE_APPROVAL_FIELDS = []
    assert BY_CODE["XM"].authority == Authority.PROVINCE
    assert BY_CODE["SFZH"].authority == Authority.PROVINCE
    assert BY_CODE["BH"].authority == Authority.SCHOOL
    assert BY_CODE["XH"].authority == Authority.SCHOOL


def test_school_setting_overrides_which_fields_need_the_province(settings):
    settings.ROLL_PROVINCE_APPROVAL_FIELDS = ["XM", "BH"]
    assert BY_CODE["XM"].authority == Authority.PROVINCE
    assert BY_CODE["BH"].authority == Authority.PROVINCE
    # Not listed: the school can correct it itself.
    assert BY_CODE["SFZH"].authority == Authority.SCHOOL
    assert BY_CODE["XB"].authority == Authority.SCHOOL


def test_exam_number_is_information_only_whatever_the_setting(settings):
    settings.ROLL_PROVINCE_APPROVAL_FIELDS = ["KSH"]
    ksh = BY_CODE["KSH"]
    assert ksh.authority == Authority.NONE
    assert ksh.student_check == StudentCheck.INFO
    assert not ksh.on_card


def test_political_status_is_hidden_from_students():
    assert BY_CODE["ZZMM"].student_check == StudentCheck.HIDDEN
    assert not BY_CODE["ZZMM"].on_card


def test_major_direction_in_brackets_is_not_compared():
    major = BY_KEY["major_name"]
    assert major.same("软件工程（嵌入式方向）", "软件工程")
    assert major.same("软件工程(嵌入式方向)", "软件工程（物联网方向）")
    assert not major.same("软件工程", "计算机科学与技术")


def test_fields_compare_after_normalisation():
    assert BY_KEY["birth_date"].same("20060314", datetime.date(2006, 3, 14))
    assert BY_KEY["birth_date"].same("2006年03月14日", "2006-03-14")
    assert not BY_KEY["birth_date"].same("20060314", "20060315")
    assert BY_KEY["ethnicity"].same("崩龙族", "德昂族")
    assert BY_KEY["duration"].same("4 年", "4")
    assert BY_KEY["id_number"].same("11010519491231002x", "11010519491231002X")
    assert BY_KEY["name"].same("张 三", "张三")
    assert not BY_KEY["name"].same("张三", "张山")
    assert BY_KEY["education_category"].same("普通", "普通高等教育")


def test_dates_display_as_on_the_chsi_card():
    assert BY_KEY["admission_date"].display(datetime.date(2017, 8, 28)) == "2017年08月28日"
    assert BY_KEY["admission_date"].display(None) == ""
    assert BY_KEY["name"].display("张三") == "张三"


def test_admission_year_must_be_four_digits():
    year = BY_KEY["admission_year"]
    assert year.normalise("2025") == "2025"
    assert year.normalise(2025.0) == "2025"
    with pytest.raises(ValueError, match="四位年份"):
        year.normalise("25")


def test_contact_columns_keep_their_own_name():
    assert fields.code_of("student_number") == "XH"
    assert fields.code_of("phone") == "PHONE"


# ----------------------------------------------------------------------------
# The field owns its sensitivity, its display, its claim checks and its evidence
# ----------------------------------------------------------------------------

ID = "11010519491231002X"  # GB 11643's own example


def test_only_the_id_number_is_sensitive():
    assert [f.key for f in ROLL_FIELDS if f.sensitive] == ["id_number"]
    assert fields.sensitive_keys() == ["id_number"]


def test_a_sensitive_value_is_masked_unless_the_caller_asks_for_it_in_full():
    field = BY_KEY["id_number"]
    assert field.display(ID) == "**************002X"  # masked is the default
    assert field.display(ID, masked=True) == "**************002X"
    assert field.display(ID, masked=False) == ID
    assert field.display("", masked=True) == ""
    # Other fields look the same either way.
    assert BY_KEY["name"].display("张三", masked=True) == "张三"
    assert BY_KEY["birth_date"].display(datetime.date(1949, 12, 31), masked=True) == "1949年12月31日"


def test_a_claimed_value_is_checked_by_its_field():
    assert BY_KEY["id_number"].clean_claim(" 11010519491231002x ") == ID
    with pytest.raises(ValueError, match="校验位"):
        BY_KEY["id_number"].clean_claim("110105194912310021")
    # A passport number follows its own format, not GB 11643's.
    assert BY_KEY["id_number"].clean_claim("E12345678", id_type="护照") == "E12345678"
    with pytest.raises(ValueError, match="数字"):
        BY_KEY["name"].clean_claim("张3")
    with pytest.raises(ValueError, match="请从列表中选择"):
        BY_KEY["gender"].clean_claim("未知")
    assert BY_KEY["birth_date"].clean_claim("2007年3月14日") == "2007-03-14"
    with pytest.raises(ValueError, match="请填写"):
        BY_KEY["major_name"].clean_claim("  ")
    with pytest.raises(ValueError, match="200"):
        BY_KEY["major_name"].clean_claim("专" * 201)


def test_identity_fields_that_need_evidence_say_which():
    needing = [f for f in ROLL_FIELDS if f.evidence]
    assert {f.code for f in needing} == {"XM", "XB", "CSRQ", "SFZH", "MZ"}
    for field in needing:
        assert str(field.evidence_guidance), field.code
    assert "户口簿" in str(BY_KEY["id_number"].evidence_guidance)


def test_people_read_labels_and_codes_stay_at_the_edges():
    assert fields.label_of("SFZH") == "证件号码"
    assert fields.label_of("PHONE") == "手机号码"
    assert fields.label_of("NOPE") == "NOPE"
    assert fields.label_of(None) == ""
