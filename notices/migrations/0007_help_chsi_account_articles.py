"""Two more CHSI account problems for the help centre: e-mail activation and a wrong ID number (docs/domain.md §7)."""

from django.db import migrations

ARTICLES = [
    (
        "email-activation",
        "注册学信网时收不到激活邮件 / 邮箱验证不通过",
        "邮箱激活 邮箱验证 激活邮件 收不到邮件 验证邮件 垃圾邮件 链接失效 密保邮箱",
        """注册学信网账号时要验证邮箱：学信网会给你填写的邮箱发一封邮件，按邮件里的提示完成激活后才能继续。

**收不到邮件时，请依次检查：**

1. 邮箱地址有没有填错（尤其是 `@` 后面的部分），必要时回到注册页改正后重新发送。
2. 看看 **垃圾邮件**、**广告邮件** 或 **订阅邮件** 文件夹，邮件可能被归到了那里。
3. 稍等几分钟再刷新，不要连续多次点击重新发送。
4. 如果提示链接已失效，请重新发送一封，并用 **最新** 的一封激活。
5. 学校邮箱收不到时，可以换一个常用的个人邮箱再试。

**注意：** 重新注册时填写的密保邮箱必须从未在学信网使用过，否则注册会失败。

仍然不行，请联系学信网客服（电话 010-67410388，邮箱 kefu@chsi.com.cn）：学校 **无法** 替你激活学信网账号。
""",
    ),
    (
        "id-number-wrong",
        "学信网上显示的身份证号（证件号码）不对",
        "身份证号错误 证件号码错误 身份证号不对 证件号码有误 身份证号显示错误 实名信息 X 大小写",
        """先分清是 **哪里** 的证件号码不对：

**1. 学籍信息里的“身份证号”不对**（在“高等教育信息 → 学籍信息”里看到的）

这是学校上报的学籍数据，必须更正：身份证号会记入学历证书，毕业后无法更改。
请在核对页面对“身份证号”点击 **有误**，填写正确的号码，并按页面提示上传证明材料
（户口簿、身份证，以及户籍所在地派出所出具的证明）。
学院和学籍科核实后，会统一向学信网申请更正。

**2. 学信网账号的实名信息里证件号码填错了**（注册账号时自己填写的）

用错误的证件号码注册的账号通常 **查不到学籍**，也绑定不上。学校无法修改你的学信网账号，请按学信网
“帮助中心”中“证件号码错误”一节的说明处理，或联系学信网客服（电话 010-67410388，邮箱 kefu@chsi.com.cn）。

**小提示：** 身份证号最后一位是 **X** 时，大写和小写表示同一个号码，不算错误。
""",
    ),
]


def seed(apps, schema_editor):
    HelpArticle = apps.get_model("notices", "HelpArticle")
    # After the ten articles of 0002 (positions 10–100), in the same "account problem" spirit.
    last = HelpArticle.objects.order_by("-position").values_list("position", flat=True).first() or 0
    for offset, (slug, title, keywords, body) in enumerate(ARTICLES, start=1):
        HelpArticle.objects.get_or_create(
            slug=slug,
            defaults={
                "title": title,
                "keywords": keywords,
                "body": body.strip() + "\n",
                "position": last + offset * 10,
            },
        )


def unseed(apps, schema_editor):
    HelpArticle = apps.get_model("notices", "HelpArticle")
    HelpArticle.objects.filter(slug__in=[slug for slug, *_rest in ARTICLES]).delete()


class Migration(migrations.Migration):
    dependencies = [("notices", "0006_webhooks")]

    operations = [migrations.RunPython(seed, unseed)]
