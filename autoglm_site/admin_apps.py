"""django.contrib.admin, with our admin site (autoglm_site.admin_site) as the default one."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "autoglm_site.admin_site.AdminSite"
