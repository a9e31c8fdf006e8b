import json

from django.core.management.base import BaseCommand, CommandError

from students.importers import ENCODINGS
from students.services import roster_import


class Command(BaseCommand):
    # Django's system checks belong to runserver and migrate; an import should not pay for them.
    requires_system_checks = []
    help = "Import a roster (.xlsx, .xls, .dbf, .csv or tab-separated text): all rows or none.  Exits 1 on errors."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
        parser.add_argument("--format", choices=["text", "json"], default="text")
        parser.add_argument(
            "--source", metavar="NAME", help="import the school's own roster under this name, to compare (roster_diff)"
        )
        parser.add_argument(
            "--encoding", choices=ENCODINGS, help="text encoding of a DBF or text file whose own is wrong or missing"
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="the whole roster of its cohorts: students missing from it are marked 'not in the latest roster'",
        )

    def handle(self, *args, file, dry_run, format, encoding=None, source=None, full=False, **options):
        try:
            report = roster_import(path=file, dry_run=dry_run, encoding=encoding, source=source, full=full)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        if format == "json":
            self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        else:
            self._write_text(report)
        if report.errors:
            raise SystemExit(1)

    def _write_text(self, report):
        for error in report.errors:
            where = f"第 {error['row']} 行 " if error["row"] else ""
            field = f"[{error['field']}] " if error["field"] else ""
            self.stderr.write(f"错误 {where}{field}{error['message']}")
        for warning in report.warnings:
            self.stdout.write(f"提示 第 {warning['row']} 行 [{warning['field']}] {warning['message']}")
        if report.ignored_columns:
            self.stdout.write("已忽略的列：" + "、".join(report.ignored_columns))
        if report.errors:
            self.stderr.write(f"有 {len(report.errors)} 个错误，未导入任何记录。")
            return
        prefix = "试运行（未写入）：" if report.dry_run else ""
        self.stdout.write(
            f"{prefix}新增 {report.created}，更新 {report.updated}，未变 {report.unchanged}，提示 {len(report.warnings)}"
        )
