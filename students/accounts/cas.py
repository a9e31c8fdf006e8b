"""Campus single sign-on (统一身份认证) through CAS, switched on by CAS_SERVER_URL.

The CAS user name is a 学号 or a staff account's username.  It maps to an
existing account, or to an imported roll record (whose login is then linked);
an unknown name is refused: CAS never creates a person.
"""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.http import Http404
from django_cas_ng import views as cas_views
from django_cas_ng.utils import get_cas_client

from .services import account_for_cas_username


class CampusCASBackend(ModelBackend):
    def authenticate(self, request, ticket=None, service=None, **kwargs):
        if not (ticket and service and settings.CAS_SERVER_URL):
            return None
        client = get_cas_client(service_url=service, request=request)
        username, _attributes, _pgtiou = client.verify_ticket(ticket)
        if not username:
            return None
        user = account_for_cas_username(username)
        return user if self.user_can_authenticate(user) else None


class _EnabledOnly:
    def dispatch(self, request, *args, **kwargs):
        if not settings.CAS_SERVER_URL:
            raise Http404
        return super().dispatch(request, *args, **kwargs)


class LoginView(_EnabledOnly, cas_views.LoginView):
    pass


class LogoutView(_EnabledOnly, cas_views.LogoutView):
    pass
