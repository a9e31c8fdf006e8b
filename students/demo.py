"""Synthetic schools for demos, tests and benchmarks: plausible, never real people.

Names are drawn from common surnames and given-name characters, ID numbers are
valid (real region codes, matching birth date and gender digit, correct
check digit), and a handful of records carry deliberate errors so that the
import has findings to show.
"""

import datetime
import random

from . import idnumbers
from .fields import ROLL_FIELDS
from .normalize import ETHNIC_GROUPS

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉浩宇轩然子涵欣怡梓萱一诺思远博文俊熙雨泽语彤佳琪嘉怡晨阳睿心悦诗涵"
REGIONS = {  # county codes → 生源省市
    "110105": "北京", "120101": "天津", "130102": "河北", "140105": "山西", "210102": "辽宁",
    "220102": "吉林", "230103": "黑龙江", "310104": "上海", "320102": "江苏", "330106": "浙江",
    "340104": "安徽", "350102": "福建", "360102": "江西", "370102": "山东", "410105": "河南",
    "420106": "湖北", "430103": "湖南", "440106": "广东", "450103": "广西", "500103": "重庆",
    "510104": "四川", "520102": "贵州", "530102": "云南", "610103": "陕西", "620102": "甘肃",
}  # fmt: skip
DEPARTMENTS = {  # department → (专业代码, 专业名称, the short name classes are called by)
    "计算机学院": [("080901", "计算机科学与技术", "计科"), ("080902", "软件工程", "软工"), ("080910T", "数据科学与大数据技术", "数据")],
    "自动化学院": [("080801", "自动化", "自动化"), ("080601", "电气工程及其自动化", "电气")],
    "机械工程学院": [("080202", "机械设计制造及其自动化", "机制"), ("080204", "机械电子工程", "机电")],
    "经济管理学院": [("120203K", "会计学", "会计"), ("020101", "经济学", "经济"), ("120201K", "工商管理", "工管")],
    "外国语学院": [("050201", "英语", "英语"), ("050207", "日语", "日语")],
    "土木工程学院": [("081001", "土木工程", "土木"), ("082801", "建筑学", "建筑")],
    "化学化工学院": [("081301", "化学工程与工艺", "化工"), ("070301", "化学", "化学")],
    "数学与统计学院": [("070101", "数学与应用数学", "数学"), ("071201", "统计学", "统计")],
}  # fmt: skip
CLASSES_PER_MAJOR = 3
MINORITY_SHARE = 0.08


def _id_number(rng: random.Random, region: str, born: datetime.date, gender: str) -> str:
    # The 17th digit is odd for men and even for women (GB 11643).
    gender_digit = rng.choice("13579" if gender == "男" else "02468")
    body = f"{region}{born:%Y%m%d}{rng.randrange(100):02d}{gender_digit}"
    return body + idnumbers.check_digit(body)


def generate_roster(
    count: int = 2000,
    *,
    seed: int = 2025,
    year: int = 2025,
    school_name: str = "示范大学",
    school_code: str = "19999",
    with_errors: bool = True,
) -> list[dict]:
    """``count`` roster rows keyed by CHSI column code, deterministic for a seed."""
    rng = random.Random(seed)
    majors = [(dept, code, name, short) for dept, items in DEPARTMENTS.items() for code, name, short in items]
    classes = [
        (dept, code, name, short, n) for dept, code, name, short in majors for n in range(1, CLASSES_PER_MAJOR + 1)
    ]
    regions = list(REGIONS.items())
    rows, used_ids = [], set()
    for index in range(count):
        dept, major_code, major_name, short_name, class_no = classes[index % len(classes)]
        gender = rng.choice("男女")
        born = datetime.date(year - 18, 1, 1) + datetime.timedelta(days=rng.randrange(-500, 600))
        region, province = rng.choice(regions)
        duration = "5" if major_name == "建筑学" else "4"
        admitted = datetime.date(year, 9, rng.choice((1, 2, 6)))
        id_number = _id_number(rng, region, born, gender)
        while id_number in used_ids:
            id_number = _id_number(rng, region, born, gender)
        used_ids.add(id_number)
        rows.append(
            {
                "KSH": f"{year % 100:02d}{region[:2]}{rng.randrange(10**9, 10**10)}",
                "XH": f"{year}{(index // 1000) % 100:02d}{index % 1000:03d}{index // 100000}"
                if count > 100000
                else f"{year}{index:05d}",
                "XM": rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2)))),
                "XB": gender,
                "CSRQ": born.strftime("%Y%m%d"),
                "ZJLX": idnumbers.IdType.RESIDENT.value,
                "SFZH": id_number,
                "ZZMM": rng.choice(("共青团员", "共青团员", "群众", "中共预备党员")),
                "MZ": "汉族" if rng.random() > MINORITY_SHARE else rng.choice(ETHNIC_GROUPS[1:20]),
                "SYD": province,
                "YXDM": school_code,
                "YXMC": school_name,
                "ZYDM": major_code,
                "ZYMC": major_name,
                "FY": "",
                "XSH": dept,
                "BH": f"{short_name}{year % 100:02d}{class_no:02d}",
                "CC": "本科",
                "XZ": duration,
                "XLLB": "普通高等教育",
                "XXXS": "普通全日制",
                "RXRQ": admitted.strftime("%Y%m%d"),
                "YJBYRQ": f"{year + int(duration)}0630",
                "XJZT": "在籍（注册学籍）",
                "LQNF": str(year),
                "手机号码": f"1{rng.choice('3589')}{rng.randrange(10**8, 10**9)}",
            }
        )
    if with_errors and count >= 20:
        _plant_errors(rows, rng)
    return rows


def _plant_errors(rows: list[dict], rng: random.Random):
    """A few believable mistakes, one of each kind the import reports."""
    picks = rng.sample(range(len(rows)), 6)
    a, b, c, d, e, f = (rows[i] for i in picks)
    # Birth date typed one day off.
    born = datetime.datetime.strptime(a["CSRQ"], "%Y%m%d").date() + datetime.timedelta(days=1)
    a["CSRQ"] = born.strftime("%Y%m%d")
    # Gender entered wrong.
    b["XB"] = "女" if b["XB"] == "男" else "男"
    # Check digit wrong.
    c["SFZH"] = c["SFZH"][:17] + ("0" if c["SFZH"][17] != "0" else "1")
    # Legacy ethnic name (normalised, no finding) and an unknown one.
    d["MZ"] = "崩龙族"
    e["MZ"] = "穿青人"
    # Expected graduation far from admission + 学制.
    f["YJBYRQ"] = str(int(f["YJBYRQ"][:4]) + 2) + f["YJBYRQ"][4:]


def roster_headers() -> list[str]:
    codes = [f.code for f in ROLL_FIELDS]
    return [*codes, "手机号码"]


def write_roster_xlsx(rows: list[dict], path) -> None:
    """Write rows with shared strings, as Excel saves files (docs/performance.md §2)."""
    import xlsxwriter

    headers = roster_headers()
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False})
    sheet = workbook.add_worksheet("学籍")
    sheet.write_row(0, 0, headers)
    for number, row in enumerate(rows, start=1):
        sheet.write_row(number, 0, [row.get(h, "") for h in headers])
    workbook.close()
