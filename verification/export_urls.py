from django.urls import path

from . import export_views

app_name = "exports"

urlpatterns = [
    path("", export_views.export_list, name="export_list"),
    path("new/", export_views.export_create, name="export_create"),
    path("<int:export_id>/download/", export_views.export_download, name="export_download"),
    path("log/", export_views.export_log, name="export_log"),
]
