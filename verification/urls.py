"""URL patterns of the verification app, one list per namespace.

``student_patterns`` (namespace ``verification``) are the student's own pages and
the registrar's campaigns; ``workspace_patterns`` (``workspace``) the staff
workspaces; ``export_patterns`` (``exports``) the export pages.  The project's
``urls.py`` mounts each under its prefix.
"""

from django.urls import path

from .views import exports, helpdesk, monitor, photos, sources, student, workspace

student_patterns = [
    path("check/", student.my_checks, name="my_checks"),
    path("check/class/", monitor.class_progress, name="class_progress"),
    path("check/<int:campaign_id>/", student.checklist, name="checklist"),
    path("check/<int:campaign_id>/confirm-all/", student.confirm_all, name="confirm_all"),
    path("check/<int:campaign_id>/confirm-rest/", student.confirm_rest, name="confirm_rest"),
    path("check/<int:campaign_id>/fields/<str:field_code>/confirm/", student.field_confirm, name="field_confirm"),
    path("check/<int:campaign_id>/fields/<str:field_code>/flag/", student.field_flag, name="field_flag"),
    path("check/<int:campaign_id>/help/<str:kind>/", student.support_request, name="support_request"),
    path("flags/<int:flag_id>/", student.flag_detail, name="flag_detail"),
    path("flags/<int:flag_id>/withdraw/", student.flag_withdraw, name="flag_withdraw"),
    path("evidence/<int:evidence_id>/", student.evidence_download, name="evidence_download"),
    path("campaigns/", student.campaign_list, name="campaign_list"),
    path("campaigns/new/", student.campaign_edit, name="campaign_create"),
    path("campaigns/<int:campaign_id>/edit/", student.campaign_edit, name="campaign_update"),
]

workspace_patterns = [
    path("", workspace.dashboard, name="dashboard"),
    path("classes/<int:class_id>/", workspace.class_detail, name="class_detail"),
    path("classes/<int:class_id>/links/", workspace.progress_link_create, name="progress_link_create"),
    path("links/<int:link_id>/revoke/", workspace.progress_link_revoke, name="progress_link_revoke"),
    path("review/", workspace.review_queue, name="review_queue"),
    path("review/act/", workspace.review_act, name="review_act"),
    path("students/<int:student_id>/", workspace.student_record, name="student_record"),
    path("students/<int:student_id>/confirm-all/", workspace.proxy_confirm_all, name="proxy_confirm_all"),
    path("students/<int:student_id>/fields/<str:field_code>/flag/", workspace.proxy_flag, name="proxy_flag"),
    path("students/<int:student_id>/extend/", workspace.checklist_extend, name="checklist_extend"),
    path("students/<int:student_id>/exclude/", workspace.checklist_exclude, name="checklist_exclude"),
    path("students/<int:student_id>/restore/", workspace.checklist_restore, name="checklist_restore"),
    path("students/<int:student_id>/include/", workspace.checklist_include, name="checklist_include"),
    path("sign-off/", workspace.department_sign_off, name="department_sign_off"),
    path("sign-off/<int:sign_off_id>/withdraw/", workspace.sign_off_withdraw, name="sign_off_withdraw"),
    path("school/", workspace.school, name="school"),
    path("corrections/", workspace.correction_queue, name="correction_queue"),
    path("findings/", workspace.findings, name="findings"),
    path("photos/missing/", photos.missing_photos, name="missing_photos"),
    path("tickets/", helpdesk.ticket_queue, name="ticket_queue"),
    path("tickets/<int:ticket_id>/", helpdesk.ticket_detail, name="ticket_detail"),
    path("tickets/<int:ticket_id>/act/", helpdesk.ticket_act, name="ticket_act"),
    path("sources/", sources.source_list, name="source_list"),
    path("sources/<int:source_id>/", sources.source_diff, name="source_diff"),
    path("sources/<int:source_id>/decide/", sources.source_decide, name="source_decide"),
    path("api-clients/", sources.api_clients, name="api_clients"),
    path("api-clients/<int:client_id>/revoke/", sources.api_client_revoke_view, name="api_client_revoke"),
]

export_patterns = [
    path("", exports.export_list, name="export_list"),
    path("new/", exports.export_create, name="export_create"),
    path("<int:export_id>/download/", exports.export_download, name="export_download"),
    path("log/", exports.export_log, name="export_log"),
    path("photo-corrections/", photos.photo_corrections_zip, name="photo_corrections_zip"),
]
