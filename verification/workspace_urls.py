from django.urls import path

from . import workspace_views as views

app_name = "workspace"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("classes/<int:class_id>/", views.class_detail, name="class_detail"),
    path("classes/<int:class_id>/links/", views.progress_link_create, name="progress_link_create"),
    path("links/<int:link_id>/revoke/", views.progress_link_revoke, name="progress_link_revoke"),
    path("review/", views.review_queue, name="review_queue"),
    path("review/act/", views.review_act, name="review_act"),
    path("students/<int:student_id>/", views.student_record, name="student_record"),
    path("students/<int:student_id>/confirm-all/", views.proxy_confirm_all, name="proxy_confirm_all"),
    path("students/<int:student_id>/fields/<str:field_code>/flag/", views.proxy_flag, name="proxy_flag"),
    path("school/", views.school, name="school"),
    path("corrections/", views.correction_queue, name="correction_queue"),
    path("findings/", views.findings, name="findings"),
]
