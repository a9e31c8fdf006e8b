"""Notices, help centre, messages, reminder and digest pages.  Thin: reads from notices.selectors, writes through notices.services."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from students.audit import access_log
from students.downloads import private_file_response
from students.models import AccessEvent, Department
from students.permissions import (
    capability_required,
    classes_for,
    has_capability,
    own_student,
)
from verification.models import Campaign

from . import channels, markup, outbox, selectors, services
from .forms import (
    AttachmentForm,
    ChannelTestForm,
    DeliveryFilterForm,
    DepartmentChannelForm,
    HelpArticleForm,
    NoticeForm,
    ReminderChannelForm,
    RemindNowForm,
    StageAddForm,
)
from .models import ChannelConfig, DepartmentChannel, Digest, HelpArticle, Notice, NoticeAttachment, ReminderStage

# ---------------------------------------------------------------------------
# Notices
# ---------------------------------------------------------------------------


@never_cache
@login_required
def notice_list(request):
    if has_capability(request.user, "notice.read"):
        return render(request, "notices/notice_list.html", {"notices": selectors.notices_for_staff(user=request.user)})
    student = own_student(request.user)
    notices = selectors.notices_with_read_flag(student=student, user=request.user) if student else []
    return render(request, "notices/notice_list.html", {"notices": notices, "for_student": True})


def _notice_or_404(request, notice_id) -> Notice:
    try:
        return selectors.notice_for_viewer(user=request.user, notice_id=notice_id)
    except Notice.DoesNotExist:
        raise Http404 from None


@never_cache
@login_required
def notice_detail(request, notice_id):
    notice = _notice_or_404(request, notice_id)
    if own_student(request.user):
        services.notice_mark_read(notice=notice, user=request.user)
    return render(
        request,
        "notices/notice_detail.html",
        {"notice": notice, "body": markup.render(notice.body), "attachments": notice.attachments.all()},
    )


@never_cache
@capability_required("notice.edit")
def notice_edit(request, notice_id=None):
    notice = get_object_or_404(Notice, pk=notice_id) if notice_id else None
    form = NoticeForm(request.POST or None, instance=notice)
    if request.method == "POST" and form.is_valid():
        saved = services.notice_save(
            notice=form.save(commit=False),
            cohorts=form.cleaned_data["cohorts"],
            departments=form.cleaned_data["departments"],
            by=request.user,
        )
        messages.success(request, _("已保存“%(title)s”。") % {"title": saved.title})
        return redirect("notices:notice_update", notice_id=saved.pk)
    return render(
        request,
        "notices/notice_form.html",
        {
            "form": form,
            "notice": notice,
            "attachment_form": AttachmentForm(),
            "attachments": notice.attachments.all() if notice else [],
        },
    )


@require_POST
@capability_required("notice.edit")
def notice_publish(request, notice_id):
    notice = get_object_or_404(Notice, pk=notice_id)
    services.notice_publish(notice=notice)
    messages.success(request, _("已发布，面向的学生登录后会看到这则通知。"))
    return redirect("notices:notice_update", notice_id=notice.pk)


@require_POST
@capability_required("notice.edit")
def notice_unpublish(request, notice_id):
    notice = get_object_or_404(Notice, pk=notice_id)
    services.notice_unpublish(notice=notice)
    messages.success(request, _("已撤回发布，学生不再看到这则通知。"))
    return redirect("notices:notice_update", notice_id=notice.pk)


@never_cache
@capability_required("notice.view_stats")
def notice_stats(request, notice_id):
    notice = _notice_or_404(request, notice_id)
    departments = selectors.notice_read_rates(notice=notice, group="department", viewer=request.user)
    total = sum(row["total"] for row in departments)
    read = sum(row["read"] for row in departments)
    return render(
        request,
        "notices/notice_stats.html",
        {
            "notice": notice,
            "departments": departments,
            "classes": selectors.notice_read_rates(notice=notice, group="class", viewer=request.user),
            "total": total,
            "read": read,
            "rate": read / total if total else 0,
        },
    )


@require_POST
@capability_required("notice.edit")
def attachment_upload(request, notice_id):
    notice = get_object_or_404(Notice, pk=notice_id)
    form = AttachmentForm(request.POST, request.FILES)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
    else:
        try:
            attachment = services.attachment_add(notice=notice, upload=form.cleaned_data["file"])
        except services.NoticeError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("已上传“%(name)s”。") % {"name": attachment.original_name})
    return redirect("notices:notice_update", notice_id=notice.pk)


@require_POST
@capability_required("notice.edit")
def attachment_delete(request, attachment_id):
    attachment = get_object_or_404(NoticeAttachment, pk=attachment_id)
    services.attachment_delete(attachment=attachment)
    messages.success(request, _("已删除附件。"))
    return redirect("notices:notice_update", notice_id=attachment.notice_id)


@never_cache
@login_required
def attachment_download(request, attachment_id):
    try:
        attachment = selectors.attachment_for_viewer(user=request.user, attachment_id=attachment_id)
    except NoticeAttachment.DoesNotExist:
        raise Http404 from None
    return private_file_response(
        selectors.attachment_path(attachment), filename=attachment.original_name, content_type=attachment.content_type
    )


# ---------------------------------------------------------------------------
# Help centre
# ---------------------------------------------------------------------------


@login_required
def help_index(request):
    query = request.GET.get("q", "").strip()[:100]
    return render(
        request,
        "notices/help_index.html",
        {
            "articles": selectors.help_search(query=query),
            "query": query,
            "can_edit": has_capability(request.user, "notice.edit"),
        },
    )


@login_required
def help_article(request, slug):
    article = get_object_or_404(HelpArticle, slug=slug)
    return render(
        request,
        "notices/help_article.html",
        {
            "article": article,
            "body": markup.render(article.body),
            "can_edit": has_capability(request.user, "notice.edit"),
        },
    )


@capability_required("notice.edit")
def help_edit(request, slug=None):
    article = get_object_or_404(HelpArticle, slug=slug) if slug else None
    form = HelpArticleForm(request.POST or None, instance=article)
    if request.method == "POST" and form.is_valid():
        saved = services.help_article_save(article=form.save(commit=False), by=request.user)
        messages.success(request, _("已保存“%(title)s”。") % {"title": saved.title})
        return redirect("notices:help_article", slug=saved.slug)
    return render(request, "notices/help_form.html", {"form": form, "article": article})


# ---------------------------------------------------------------------------
# In-portal messages
# ---------------------------------------------------------------------------


@never_cache
@login_required
def message_list(request):
    page = Paginator(selectors.messages_for(user=request.user), 50).get_page(request.GET.get("page"))
    # Read into memory first: this visit still marks them new, the badge already counts them read.
    page.object_list = list(page.object_list)
    services.messages_mark_read(user=request.user)
    return render(request, "notices/message_list.html", {"page": page})


# ---------------------------------------------------------------------------
# Reminder plan, delivery log, "remind these now"
# ---------------------------------------------------------------------------


@never_cache
@capability_required("reminder.manage")
def reminder_plan(request, campaign_id):
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    form = StageAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            stage = services.reminder_stage_add(campaign=campaign, days_before=form.cleaned_data["days_before"])
        except services.NoticeError as exc:
            form.add_error("days_before", str(exc))
        else:
            n = stage.days_before
            added = ngettext("已添加截止前 %(n)s 天的提醒。", "已添加截止前 %(n)s 天的提醒。", n)
            messages.success(request, added % {"n": n})
            return redirect("notices:reminder_plan", campaign_id=campaign.pk)
    return render(
        request,
        "notices/reminder_plan.html",
        {
            "campaign": campaign,
            "stages": selectors.reminder_plan(campaign=campaign),
            "form": form,
            "estimate": selectors.send_estimate(campaign=campaign),
            "can_configure_channels": has_capability(request.user, "reminder.channels"),
        },
    )


@require_POST
@capability_required("reminder.manage")
def reminder_stage_remove(request, stage_id):
    stage = get_object_or_404(ReminderStage, pk=stage_id)
    if services.reminder_stage_remove(stage=stage):
        messages.success(request, _("已删除这一轮提醒。"))
    else:
        messages.error(request, _("这一轮提醒已发送，不能删除。"))
    return redirect("notices:reminder_plan", campaign_id=stage.campaign_id)


@never_cache
@capability_required("reminder.manage")
def delivery_log(request, campaign_id):
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    stages = list(campaign.reminder_stages.filter(dispatched_at__isnull=False))
    form = DeliveryFilterForm(request.GET or None, stages=stages)
    filters = form.cleaned_data if form.is_valid() else {}
    rows = selectors.delivery_log(
        campaign=campaign,
        status=filters.get("status") or "",
        stage_id=filters.get("stage"),
        query=filters.get("q") or "",
    )
    page = Paginator(rows, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "notices/delivery_log.html",
        {
            "campaign": campaign,
            "summary": selectors.delivery_summary(campaign=campaign),
            "form": form,
            "page": page,
            "query": query.urlencode(),
        },
    )


@require_POST
@capability_required("reminder.remind_class")
def remind_now(request, class_id):
    class_group = get_object_or_404(classes_for(request.user), pk=class_id)
    form = RemindNowForm(request.POST)
    back = reverse("workspace:class_detail", args=[class_group.pk])
    if not form.is_valid():
        messages.error(request, _("页面已过期，请刷新后重试。"))
        return redirect(back)
    campaign = get_object_or_404(Campaign, pk=form.cleaned_data["campaign"])
    back = f"{back}?campaign={campaign.pk}"
    whole_class = form.cleaned_data["scope"] == RemindNowForm.WHOLE_CLASS
    try:
        stage, created = services.class_remind_now(
            user=request.user,
            campaign=campaign,
            class_group=class_group,
            student_ids=None if whole_class else form.cleaned_data["students"],
            request_key=form.cleaned_data["request_key"],
        )
    except services.NoticeError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    if created:
        # Told as the outbox will send it: each student on the first channel of the school's order that reaches them.
        estimate = selectors.send_estimate(
            campaign=campaign, student_ids=stage.deliveries.values("student_id").distinct()
        )
        if estimate["reached"]:
            by_channel = "、".join(
                _("%(channel)s %(n)s 人") % {"channel": label, "n": n} for label, n in estimate["channels"]
            )
            sent = ngettext(
                "将通过 %(via)s 提醒 %(n)s 名学生（%(by_channel)s）。",
                "将通过 %(via)s 提醒 %(n)s 名学生（%(by_channel)s）。",
                estimate["reached"],
            )
            messages.success(
                request, sent % {"via": estimate["via"], "n": estimate["reached"], "by_channel": by_channel}
            )
        if estimate["unreachable"]:
            message = ngettext(
                "其中 %(n)s 人没有可用的联系方式（手机号码、企业微信或钉钉账号、电子邮箱），收不到提醒，请另行通知。",
                "其中 %(n)s 人没有可用的联系方式（手机号码、企业微信或钉钉账号、电子邮箱），收不到提醒，请另行通知。",
                estimate["unreachable"],
            )
            messages.warning(request, message % {"n": estimate["unreachable"]})
    else:
        messages.info(request, _("这次提醒已经发送过，没有重复发送。"))
    return redirect(back)


# ---------------------------------------------------------------------------
# Department digests and group robots
# ---------------------------------------------------------------------------


@never_cache
@capability_required("digest.view")
def digest_list(request):
    page = Paginator(selectors.digests_for(user=request.user), 50).get_page(request.GET.get("page"))
    return render(request, "notices/digest_list.html", {"page": page})


@never_cache
@capability_required("digest.view")
def digest_download(request, digest_id):
    try:
        digest = selectors.digest_for_viewer(user=request.user, digest_id=digest_id)
    except Digest.DoesNotExist:
        raise Http404 from None
    prefix = _("未完成核对名单")  # outside the f-string, where makemessages finds it
    access_log(
        request,
        AccessEvent.Action.DIGEST_DOWNLOAD,
        target=f"{digest.department.name} {digest.day:%Y-%m-%d}",
        rows=digest.row_count,
    )
    return private_file_response(
        selectors.digest_file(digest),
        filename=f"{prefix}-{digest.department.name}-{digest.day:%Y%m%d}.xlsx",
        content_type=services.XLSX,
    )


@never_cache
@capability_required("reminder.manage")
def channel_list(request):
    return render(
        request,
        "notices/channel_list.html",
        {"rows": selectors.channels_overview()},
    )


@never_cache
@capability_required("reminder.manage")
def channel_edit(request, department_id):
    department = get_object_or_404(Department, pk=department_id)
    channel = DepartmentChannel.objects.filter(department=department).first()
    saved_robot = channel.robot if channel and channel.webhook_url else ""
    # The saved address is not put back into the form: it holds the robot's token.
    form = DepartmentChannelForm(request.POST or None, initial={"robot": saved_robot}, saved_robot=saved_robot)
    if request.method == "POST" and form.is_valid():
        try:
            services.channel_save(department=department, **form.cleaned_data)
        except services.NoticeError as exc:
            form.add_error("webhook_url", str(exc))
        else:
            messages.success(request, _("已保存%(department)s的群机器人设置。") % {"department": department.name})
            return redirect("notices:channel_edit", department_id=department.pk)
    return render(
        request,
        "notices/channel_form.html",
        {"department": department, "form": form, "channel": channel, "saved": selectors.channel_masked(channel)},
    )


# ---------------------------------------------------------------------------
# The school's reminder channels (提醒渠道)
# ---------------------------------------------------------------------------


@never_cache
@capability_required("reminder.channels")
def reminder_channels(request):
    if request.method == "POST":
        moved = services.reminder_channel_move(
            name=request.POST.get("name", ""), step=-1 if request.POST.get("move") == "up" else 1, by=request.user
        )
        if moved:
            messages.success(request, _("已调整提醒渠道的顺序。"))
        return redirect("notices:reminder_channels")
    return render(request, "notices/reminder_channels.html", selectors.reminder_channels())


def _channel_or_404(name: str):
    if name not in channels.STUDENT_CHANNELS:
        raise Http404
    return outbox.CHANNELS[name], ChannelConfig.objects.filter(name=name).first()


@never_cache
@capability_required("reminder.channels")
def reminder_channel_edit(request, channel):
    name = channel
    channel, config = _channel_or_404(name)
    order = channels.reminder_channel_order()
    place = order.index(name) + 1 if name in order else len(order) + 1
    initial = {"enabled": bool(config and config.enabled), "position": place}
    if config:
        initial |= {"provider": config.provider, "night_sms_allowed": config.night_sms_allowed, **config.options}
    form = ReminderChannelForm(request.POST or None, name=name, config=config, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.reminder_channel_save(
            name=name,
            enabled=data["enabled"],
            position=data["position"],
            options=form.options(),
            option_keys=form.option_keys(),
            secret=data.get("secret") or "",
            provider=data.get("provider") or "",
            night_sms_allowed=data.get("night_sms_allowed") or False,
            by=request.user,
        )
        messages.success(request, _("已保存“%(channel)s”的设置。") % {"channel": channel.label})
        return redirect("notices:reminder_channel_edit", channel=name)
    return render(
        request,
        "notices/reminder_channel_form.html",
        {
            "name": name,
            "label": channel.label,
            "form": form,
            "secret_saved": bool(config and config.secret),
            "test_form": ChannelTestForm(),
        },
    )


@require_POST
@capability_required("reminder.channels")
def reminder_channel_test(request, channel):
    name = channel
    channel, _config = _channel_or_404(name)
    form = ChannelTestForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("请填写收件人。"))
    else:
        try:
            address = services.reminder_channel_test(name=name, to=form.cleaned_data["to"], by=request.user)
        except services.NoticeError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, _("已通过“%(channel)s”向 %(to)s 发送测试消息。") % {"channel": channel.label, "to": address}
            )
    return redirect("notices:reminder_channel_edit", channel=name)
