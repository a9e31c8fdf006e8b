import json

from django.core.management.base import BaseCommand, CommandError

from students.models import Photo
from students.photos.services import KEYS, photos_import


class Command(BaseCommand):
    # Django's system checks belong to runserver and migrate; an import should not pay for them.
    requires_system_checks = []
    help = (
        "Import a zip of student photos (JPEGs named by 身份证号, 考生号 or 学号).  Exits 1 if the package is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument("zip")
        parser.add_argument("--kind", choices=Photo.Kind.values, required=True)
        parser.add_argument("--key", choices=KEYS, help="what the files are named by (recognised when omitted)")
        parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, zip, kind, key, dry_run, format, **options):
        try:
            report = photos_import(path=zip, kind=kind, key=key, dry_run=dry_run)
        except FileNotFoundError:
            raise CommandError(f"No such file: {zip}") from None
        if format == "json":
            self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        else:
            for error in report.errors:
                self.stderr.write(f"错误 {error['message']}")
            for item in report.unmatched:
                self.stdout.write(f"未导入 {item['file']}：{item['reason']}")
            prefix = "试运行（未写入）：" if dry_run else ""
            self.stdout.write(
                f"{prefix}新增 {report.matched}，替换 {report.replaced}，未变 {report.unchanged}，"
                f"未导入 {len(report.unmatched)}"
            )
        if report.errors:
            raise SystemExit(1)
