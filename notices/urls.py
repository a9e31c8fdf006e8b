from django.urls import path

from . import signin, views, webhook_views

app_name = "notices"

urlpatterns = [
    path("", views.notice_list, name="notice_list"),
    path("new/", views.notice_edit, name="notice_create"),
    path("<int:notice_id>/", views.notice_detail, name="notice_detail"),
    path("<int:notice_id>/edit/", views.notice_edit, name="notice_update"),
    path("<int:notice_id>/publish/", views.notice_publish, name="notice_publish"),
    path("<int:notice_id>/unpublish/", views.notice_unpublish, name="notice_unpublish"),
    path("<int:notice_id>/stats/", views.notice_stats, name="notice_stats"),
    path("<int:notice_id>/attachments/", views.attachment_upload, name="attachment_upload"),
    path("attachments/<int:attachment_id>/", views.attachment_download, name="attachment_download"),
    path("attachments/<int:attachment_id>/delete/", views.attachment_delete, name="attachment_delete"),
    path("help/", views.help_index, name="help_index"),
    path("help/articles/new/", views.help_edit, name="help_create"),
    path("help/<slug:slug>/", views.help_article, name="help_article"),
    path("help/<slug:slug>/edit/", views.help_edit, name="help_update"),
    path("messages/", views.message_list, name="message_list"),
    path("campaigns/<int:campaign_id>/reminders/", views.reminder_plan, name="reminder_plan"),
    path("reminders/<int:stage_id>/remove/", views.reminder_stage_remove, name="reminder_stage_remove"),
    path("campaigns/<int:campaign_id>/deliveries/", views.delivery_log, name="delivery_log"),
    path("classes/<int:class_id>/remind/", views.remind_now, name="remind_now"),
    path("digests/", views.digest_list, name="digest_list"),
    path("digests/<int:digest_id>/", views.digest_download, name="digest_download"),
    path("webhooks/", webhook_views.webhook_list, name="webhook_list"),
    path("webhooks/<int:endpoint_id>/deactivate/", webhook_views.webhook_deactivate, name="webhook_deactivate"),
    path("signin/<str:platform>/", signin.start, name="campus_signin"),
    path("signin/<str:platform>/callback/", signin.callback, name="campus_signin_callback"),
    path("channels/", views.channel_list, name="channel_list"),
    path("channels/<int:department_id>/", views.channel_edit, name="channel_edit"),
    path("reminder-channels/", views.reminder_channels, name="reminder_channels"),
    path("reminder-channels/<slug:channel>/", views.reminder_channel_edit, name="reminder_channel_edit"),
    path("reminder-channels/<slug:channel>/test/", views.reminder_channel_test, name="reminder_channel_test"),
]
