import json

from django.core.management.base import BaseCommand, CommandError

from students.models import RosterSource
from students.sources import roster_diff


class Command(BaseCommand):
    # Django's system checks belong to runserver and migrate; an import should not pay for them.
    requires_system_checks = []
    help = "Compare CHSI's records with a second source imported with import_roster --source NAME."

    def add_arguments(self, parser):
        parser.add_argument("source_name")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args, source_name, format, **options):
        source = RosterSource.objects.filter(name=source_name).first()
        if source is None:
            names = "、".join(RosterSource.objects.values_list("name", flat=True)) or "（无）"
            raise CommandError(f"没有名为 {source_name} 的对照名单；已有：{names}")
        diff = roster_diff(source)
        if format == "json":
            self.stdout.write(json.dumps(diff.as_dict(), ensure_ascii=False, indent=2))
            return
        self.stdout.write(
            f"对照 {diff.compared} 人；仅在学信网 {len(diff.only_in_chsi)} 人；"
            f"仅在{source.name} {len(diff.only_in_source)} 人；差异 {len(diff.differences)} 处"
        )
        for roll_field, count in diff.counts_by_field():
            self.stdout.write(f"  {roll_field.label}（{roll_field.code}）：{count}")
        for number in diff.only_in_source:
            self.stdout.write(f"仅在{source.name}（未在学信网注册？）：{number}")
