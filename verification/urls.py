from django.urls import path

from . import views

app_name = "verification"

urlpatterns = [
    path("check/", views.my_checks, name="my_checks"),
    path("check/<int:campaign_id>/", views.checklist, name="checklist"),
    path("check/<int:campaign_id>/confirm-all/", views.confirm_all, name="confirm_all"),
    path("check/<int:campaign_id>/fields/<str:field_code>/confirm/", views.field_confirm, name="field_confirm"),
    path("check/<int:campaign_id>/fields/<str:field_code>/flag/", views.field_flag, name="field_flag"),
    path("check/<int:campaign_id>/help/<str:kind>/", views.support_request, name="support_request"),
    path("flags/<int:flag_id>/", views.flag_detail, name="flag_detail"),
    path("flags/<int:flag_id>/withdraw/", views.flag_withdraw, name="flag_withdraw"),
    path("evidence/<int:evidence_id>/", views.evidence_download, name="evidence_download"),
    path("campaigns/", views.campaign_list, name="campaign_list"),
    path("campaigns/new/", views.campaign_edit, name="campaign_create"),
    path("campaigns/<int:campaign_id>/edit/", views.campaign_edit, name="campaign_update"),
]
