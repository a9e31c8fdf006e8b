import datetime
import random
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from students.demo import generate_roster, write_roster_xlsx
from students.models import ClassGroup, Cohort, Department, Student, User
from students.services import roster_import

DEMO_PASSWORD = "rollcheck-demo"


class Command(BaseCommand):
    help = "Build a believable demo school (synthetic people) through the real roster import."

    def add_arguments(self, parser):
        parser.add_argument("--students", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=2025)
        parser.add_argument("--xlsx", metavar="PATH", help="also write the roster as .xlsx in CHSI column format")
        parser.add_argument("--roster-only", action="store_true", help="only write the .xlsx, touch no database")
        parser.add_argument(
            "--claimable", action="store_true", help="only print a demo student who can still claim an account"
        )

    def handle(self, *args, students, seed, xlsx, roster_only, claimable, **options):
        from django.conf import settings

        if claimable:
            self._print_claimable()
            return
        rows = generate_roster(students, seed=seed, school_name=settings.SCHOOL_NAME, school_code=settings.SCHOOL_CODE)
        if xlsx:
            write_roster_xlsx(rows, xlsx)
            self.stdout.write(f"Roster written to {xlsx} ({len(rows)} students).")
        if roster_only:
            if not xlsx:
                raise CommandError("--roster-only needs --xlsx PATH")
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "demo-roster.xlsx"
            write_roster_xlsx(rows, path)
            report = roster_import(path=path, file_name="demo-roster.xlsx")
        if report.errors:
            raise CommandError(f"demo roster failed to import: {report.errors[:3]}")
        self.stdout.write(
            f"Imported {report.created} new, {report.updated} updated students with {len(report.warnings)} findings."
        )
        demo_student = self._accounts()
        self._campaign(seed=seed, skip=demo_student)
        self._print_claimable()

    def _print_claimable(self):
        """A student with no account yet, in the open campaign and not started: a newcomer tries the claim with it."""
        unclaimed = Student.objects.filter(user__isnull=True).order_by("student_number")
        cohort = Cohort.objects.order_by("-admission_year").first()
        student = (
            unclaimed.filter(cohort=cohort, checklists__state="not_started").first()
            or unclaimed.filter(cohort=cohort).first()
            or unclaimed.first()
        )
        if student is None:
            self.stdout.write("\nEvery demo student has claimed an account; run seed_demo on an empty database.")
            return
        self.stdout.write(
            "\nTry the first sign-in (学生首次登录 on the sign-in page) as a student without an account:\n"
            f"  学号 {student.student_number}  姓名 {student.name}  证件号码后 6 位 {student.id_number[-6:]}"
        )

    @transaction.atomic
    def _accounts(self):
        first_department = Department.objects.order_by("name").first()
        student = Student.objects.filter(department=first_department).order_by("student_number").first()
        # The demo student's classmate is the class's monitor (班长); a counsellor has their class and one of
        # another department (docs/roles.md).
        monitor = (
            Student.objects.filter(class_group=student.class_group).exclude(pk=student.pk).order_by("student_number")
        ).first()
        counselled = [student.class_group] if student.class_group else []
        elsewhere = ClassGroup.objects.exclude(department=first_department).order_by("name").first()
        counselled += [elsewhere] if elsewhere else []
        accounts = [
            ("admin", User.Role.ADMIN, "系统管理员", True),
            ("registrar", User.Role.REGISTRAR, "学籍科", False),
            ("secretary", User.Role.SECRETARY, f"{first_department.name} 教务秘书", False),
            ("counsellor", User.Role.COUNSELLOR, "辅导员", False),
            ("admissions", User.Role.ADMISSIONS, "招生办", False),
            (student.student_number, User.Role.STUDENT, student.name, False),
        ]
        if monitor:
            accounts.append((monitor.student_number, User.Role.STUDENT, f"{monitor.name}（班长）", False))
        rows = []
        for username, role, label, superuser in accounts:
            user, _created = User.objects.get_or_create(username=username, defaults={"role": role})
            user.role, user.first_name = role, label
            user.is_staff = user.is_superuser = superuser
            user.set_password(DEMO_PASSWORD)
            user.save()
            if role == User.Role.SECRETARY:
                user.departments.set([first_department])
            if role == User.Role.COUNSELLOR:
                user.classes.set(counselled)
            if role == User.Role.STUDENT:
                who = monitor if monitor and username == monitor.student_number else student
                Student.objects.filter(pk=who.pk).update(user=user)
                if who == monitor:
                    monitor.class_group.monitors.add(user)
            rows.append((User.Role(role).label, username, label))
        self.stdout.write(f"\nDemo accounts (password for all: {DEMO_PASSWORD}):")
        for role, username, label in rows:
            self.stdout.write(f"  {role:<8} {username:<14} {label}")
        return student

    def _campaign(self, *, seed, skip):
        """An open campaign with some students already done, so every page has something to show."""
        from verification import services
        from verification.models import Campaign

        cohort = Cohort.objects.order_by("-admission_year").first()
        now = timezone.now()
        opened = now - datetime.timedelta(days=10)
        campaign = Campaign.objects.filter(name=f"{cohort}新生学籍核对").first() or Campaign(
            name=f"{cohort}新生学籍核对",
            opens_at=opened,
            closes_at=now + datetime.timedelta(days=21),
            instructions="请登录学信网核对本人学籍信息，逐项选择“正确”或“有误”。信息有误的，请填写正确内容并上传证明材料。",
        )
        services.campaign_save(campaign=campaign, cohorts=[cohort])
        if campaign.checklists.exclude(state="not_started").exists():
            return
        rng = random.Random(seed)
        checklists = list(campaign.checklists.exclude(student=skip).select_related("student").order_by("id"))
        active = rng.sample(checklists, k=len(checklists) * 11 // 20)
        for index, checklist in enumerate(active):
            when = opened + datetime.timedelta(seconds=rng.uniform(0, (now - opened).total_seconds()))
            version = checklist.student.version
            if index % 10 < 8:
                services.checklist_confirm_all(
                    checklist_id=checklist.pk, record_version=version, by=services.SYSTEM, now=when
                )
            elif index % 10 == 8:
                # Everything else checked, one field reported wrong: a finished, flagged checklist.
                services.checklist_confirm_all(
                    checklist_id=checklist.pk, record_version=version, by=services.SYSTEM, now=when
                )
                services.field_flag(
                    checklist_id=checklist.pk,
                    field_code="BH",
                    claimed_value=checklist.student.class_name + "A",
                    explanation="班号与学院分班名单不一致",
                    record_version=version,
                    by=services.SYSTEM,
                    now=when,
                )
            else:
                services.field_confirm(
                    checklist_id=checklist.pk, field_code="XM", record_version=version, by=services.SYSTEM, now=when
                )
        self.stdout.write(f"Campaign “{campaign.name}” open, {len(active)} students have started.")
