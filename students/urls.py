from django.urls import path

from . import access_views, views

app_name = "students"

urlpatterns = [
    path("", views.student_list, name="student_list"),
    path("<int:pk>/", views.student_detail, name="student_detail"),
    path("roster/import/", views.roster_upload, name="roster_upload"),
    path("access-log/", access_views.access_log_list, name="access_log"),
]
