"""The help centre's answer on the graduates' 学历照片: getting the 采集码 and taking part in 图像采集
(docs/domain.md §6.5; the missing-photo list sends departments' students here)."""

from django.db import migrations

ARTICLES = [
    (
        "image-collection-code",
        "毕业生学历照片：如何获取采集码并参加图像采集",
        "采集码 图像采集码 图像采集 学历照片 毕业照片 毕业生照片 图像校对 人像比对 学历证书 电子注册 拍照 证件照",
        """学历照片会印在学历证书电子注册信息上，毕业前由学校统一组织 **图像采集**（一般在 11 月至次年 4 月）。
自 2023 届毕业生起，采集时必须使用本人的 **采集码**。

**采集步骤：**

1. 登录学信网（www.chsi.com.cn），进入 **学信档案**，在“图像采集码”处获取本人的采集码。
   采集码只属于你本人，请不要发给他人代用。
2. 按学校或院系通知的时间和地点，携带 **身份证** 和 **采集码**，到新华社或授权的采集点拍摄学历照片。
3. 照片规格：**480×640 像素，JPEG 格式，不超过 40 KB，蓝色背景**，由采集点按规格拍摄和上传。
4. 采集完成后，登录学信网 **学信档案 → 图像校对**，核对本人的学历照片。

**注意：** 学历照片会与录取照片进行 **人像比对**，比对未通过将无法进行学历证书电子注册。
请按正常证件照要求拍摄（不戴帽子、不遮挡面部），不要错过学校安排的采集时间。

学校收到学历照片后，你会在本系统的毕业生核对中看到它：照片是本人、清晰，点击 **正确**；
不是本人或看不清，点击 **有误** 并说明情况，如已重新参加采集，可以上传新照片。
还没有收到学历照片时，请按院系通知参加采集。
""",
    ),
]


def seed(apps, schema_editor):
    HelpArticle = apps.get_model("notices", "HelpArticle")
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
    dependencies = [("notices", "0008_student_notifications")]

    operations = [migrations.RunPython(seed, unseed)]
