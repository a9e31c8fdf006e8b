from django.urls import path

from . import access_views, views
from .accounts import views as account_views
from .photos import views as photo_views

app_name = "students"

urlpatterns = [
    path("", views.student_list, name="student_list"),
    path("<int:pk>/", views.student_detail, name="student_detail"),
    path("<int:pk>/account/unlock/", account_views.student_signin_unlock, name="signin_unlock"),
    path("<int:pk>/account/reset/", account_views.student_signin_reset, name="signin_reset"),
    path("roster/import/", views.roster_upload, name="roster_upload"),
    path("access-log/", access_views.access_log_list, name="access_log"),
    path("<int:student_id>/photos/<str:kind>/", photo_views.photo, name="photo"),
]
