"""The admin of API keys: list, filter and search them, issue one (its plaintext
is shown once, on the page answering the form, and stored nowhere), revoke and
rotate. The hash is never shown; a key's record is read-only — every change goes
through the manager (version-checked, evented), never through ``save()``.

The usage dashboard (:mod:`apikeys.dashboard`) is served inside the admin at
``<admin>/apikeys/apikeyrecord/dashboard/`` for staff with the view permission
(actions need the change permission); :func:`use_monitor` says which monitor
it reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control

from apikeys._display import human_utc, state_label
from apikeys._models import IssuedKey, KeyState
from apikeys.django._runtime import get_manager, get_settings
from apikeys.django.conf import parse_duration
from apikeys.django.models import APIKeyRecord
from apikeys.django.store import state_filter, to_db
from apikeys.errors import APIKeyError, ConfigurationError

__all__ = ["APIKeyRecordAdmin", "IssueKeyForm", "use_monitor"]

_dashboard: list[Any] = []  # the Dashboard the admin serves, made on first use


def use_monitor(monitor: Any) -> None:
    """Serve the admin's dashboard over ``monitor`` (a
    :class:`~apikeys.monitoring.Monitor` of the configured manager). Without a
    call, the first dashboard request makes a Monitor with in-memory stores on
    ``get_manager()``, which sees only this process's traffic from then on."""
    from apikeys.dashboard import Dashboard

    _dashboard[:] = [Dashboard(monitor, authorize=lambda request: False)]


def _admin_dashboard() -> Any:
    if not _dashboard:
        from apikeys.monitoring import Monitor

        use_monitor(Monitor(get_manager()))
    return _dashboard[0]


_ISSUED = "_apikeys_issued"
_DETAIL_FIELDS = (
    "id",
    "prefix",
    "owner",
    "name",
    "state_now",
    "scopes",
    "created",
    "expires",
    "last_used",
    "last_used_ip",
    "revoked",
    "revoke_reason",
    "suspended",
    "suspend_reason",
    "replaces",
    "replaced_by",
    "grace_ends",
    "allowed_ips",
    "rate_limits",
    "quota",
    "metadata",
    "version",
)


def _instant(field: str, label: str, missing: str = "-") -> Any:
    """An admin column showing the datetime ``field`` as every apikeys tool does."""

    @admin.display(description=label, ordering=field)
    def show(self: Any, obj: APIKeyRecord) -> str:
        return human_utc(getattr(obj, field), missing)

    return show


def _words(text: str) -> list[str]:
    return [word for word in text.replace(",", " ").split() if word]


def _format_duration(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class IssueKeyForm(forms.ModelForm):  # type: ignore[type-arg]
    """The admin's form issuing a key.

    Validating it issues the key through the manager, so every refusal (a bad
    scope, the issuance policy, the database down) is shown on the form, and a
    valid form has :attr:`issued`.
    """

    key_prefix = forms.ChoiceField(label="Prefix", choices=())
    grant_scopes = forms.CharField(
        label="Scopes",
        required=False,
        help_text="Separated by spaces or commas, e.g. orders:read orders:write.",
    )
    lifetime = forms.CharField(
        label="Expires in",
        required=False,
        help_text="A duration such as 90d, 12h or 2w; empty: never.",
    )
    ip_allowlist = forms.CharField(
        label="Allowed addresses",
        required=False,
        help_text="Addresses or CIDR networks; empty: anywhere.",
    )
    key_rate_limits = forms.CharField(
        label="Rate limits", required=False, help_text="e.g. 100/minute 10000/day."
    )
    key_quota = forms.CharField(label="Quota", required=False, help_text="e.g. 1000/month.")

    class Meta:
        model = APIKeyRecord
        fields = ("owner", "name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = get_settings()
        field = self.fields["key_prefix"]
        field.choices = [(p, p) for p in conf.prefixes]  # type: ignore[attr-defined]
        field.initial = conf.prefixes[0]
        self.fields["lifetime"].initial = _format_duration(conf.default_expiry)
        self.issued: IssuedKey | None = None
        """The key issued, once the form is valid."""
        self._create_args: dict[str, Any] | None = None

    def clean(self) -> dict[str, Any]:
        """Read the values into the arguments of ``manager.create``."""
        data: dict[str, Any] = super().clean() or {}
        if self.errors:
            return data
        lifetime = (data.get("lifetime") or "").strip()
        try:
            expires_in = parse_duration(lifetime, name="Expires in") if lifetime else None
        except ConfigurationError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if expires_in is not None and expires_in <= timedelta(0):
            raise forms.ValidationError("Expires in must be positive (or empty: never).")
        args: dict[str, Any] = {
            "owner": data["owner"],
            "name": data.get("name") or None,
            "scopes": _words(data.get("grant_scopes", "")),
            "expires_in": expires_in,
            "allowed_ips": _words(data.get("ip_allowlist", "")),
            "rate_limits": _words(data.get("key_rate_limits", "")),
            "quota": (data.get("key_quota") or "").strip() or None,
            "prefix": data["key_prefix"],
        }
        self._create_args = args
        return data

    def full_clean(self) -> None:
        """Validate, then issue the key: last, once every other check has passed,
        so an invalid form never leaves a key behind."""
        super().full_clean()
        if self._create_args is None or self.errors:
            return
        try:
            self.issued = get_manager().create(**self._create_args)
        except APIKeyError as exc:
            self.add_error(None, exc.message)


class StateFilter(admin.SimpleListFilter):
    """Filter by state now: active, expired, revoked or suspended."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, str]]:
        return [(state.value, state_label(state)) for state in KeyState]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        value = self.value()
        if value not in {state.value for state in KeyState}:
            return queryset
        chosen: QuerySet[Any] = queryset.filter(
            state_filter(KeyState(value), to_db(get_manager().now()))
        )
        return chosen


class ExpiryFilter(admin.SimpleListFilter):
    """Filter by expiry: past, within a week or a month, or never."""

    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Sequence[tuple[str, str]]:
        return [
            ("past", "expired"),
            ("7d", "within 7 days"),
            ("30d", "within 30 days"),
            ("never", "never expires"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        now = get_manager().now()
        value = self.value()
        if value == "past":
            condition = Q(expires_at__lte=to_db(now))
        elif value in {"7d", "30d"}:
            horizon = now + timedelta(days=7 if value == "7d" else 30)
            condition = Q(expires_at__gt=to_db(now)) & Q(expires_at__lte=to_db(horizon))
        elif value == "never":
            condition = Q(expires_at__isnull=True)
        else:
            return queryset
        chosen: QuerySet[Any] = queryset.filter(condition)
        return chosen


@admin.register(APIKeyRecord)
class APIKeyRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """API keys in the admin: read-only records, issued and changed via the manager."""

    list_display = (
        "id",
        "prefix",
        "owner",
        "name",
        "state_now",
        "scope_list",
        "created",
        "expires",
        "last_used",
    )
    list_filter = ("owner", StateFilter, ExpiryFilter)
    search_fields = ("=id", "owner", "name")
    ordering = ("-created_at",)
    actions = ("revoke_keys", "rotate_keys")
    issued_template = "admin/apikeys/issued.html"
    change_list_template = "admin/apikeys/change_list.html"

    # --- the usage dashboard ------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        from django.urls import path
        from django.views.decorators.csrf import csrf_exempt

        # The dashboard's forms carry its own CSRF token, checked by its core.
        view = self.admin_site.admin_view(csrf_exempt(self.dashboard_view))
        name = f"{self.opts.app_label}_{self.opts.model_name}_dashboard"
        return [
            path("dashboard/", view, name=name),
            path("dashboard/<path:rest>", view),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        """The dashboard's pages, for staff who may view keys (change: act on them)."""
        from django.core.exceptions import PermissionDenied
        from django.urls import reverse

        from apikeys.dashboard import DashboardRequest

        post = request.method == "POST"
        allowed = (
            super().has_change_permission(request) if post else self.has_view_permission(request)
        )
        if not allowed:
            raise PermissionDenied
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_dashboard"
        answer = _admin_dashboard().handle_trusted(
            DashboardRequest(
                method=str(request.method),
                path="/" + rest,
                root=reverse(name, current_app=self.admin_site.name).rstrip("/"),
                query=request.GET.dict(),
                form=request.POST.dict() if post else {},
                headers={k.lower(): v for k, v in request.headers.items()},
                client=request.META.get("REMOTE_ADDR"),
                secure=request.is_secure(),
                native=request,
            ),
            request.user.get_username(),
        )
        response = HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
        for header, value in answer.headers:
            if header == "Set-Cookie":
                response.cookies.load(value)  # Django writes its cookies itself
            else:
                response[header] = value
        return response

    # --- what is shown ------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows: QuerySet[Any] = super().get_queryset(request).using(get_settings().database)
        return rows

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [
                (None, {"fields": ("owner", "name", "key_prefix", "grant_scopes", "lifetime")}),
                (
                    "Restrictions",
                    {"fields": ("ip_allowlist", "key_rate_limits", "key_quota")},
                ),
            ]
        return [(None, {"fields": _DETAIL_FIELDS})]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else _DETAIL_FIELDS

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = IssueKeyForm
        return super().get_form(request, obj, change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A record is never edited in a form; the actions (revoke, rotate) need
        # the model's change permission.
        return obj is None and super().has_change_permission(request)

    created = _instant("created_at", "created")
    expires = _instant("expires_at", "expires", "never")
    last_used = _instant("last_used_at", "last used", "never")
    revoked = _instant("revoked_at", "revoked")
    suspended = _instant("disabled_at", "suspended")

    @admin.display(description="suspend reason")
    def suspend_reason(self, obj: APIKeyRecord) -> str:
        return obj.disabled_reason or "-"

    @admin.display(description="grace ends")
    def grace_ends(self, obj: APIKeyRecord) -> str:
        return human_utc(obj.expires_at) if obj.replaced_by else "-"

    @admin.display(description="state")
    def state_now(self, obj: APIKeyRecord) -> str:
        return state_label(obj.state(get_manager().now()))

    @admin.display(description="scopes")
    def scope_list(self, obj: APIKeyRecord) -> str:
        return " ".join(obj.scopes or ())

    # --- issuing ------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Nothing to save: validating the form issued the key through the manager
        (never ``obj.save()``); keep it for :meth:`response_add`."""
        if change:  # pragma: no cover - records are read-only
            return
        issued = form.issued
        if issued is None:  # pragma: no cover - a valid form has issued its key
            raise ValueError("the form issued no key")
        key = issued.key
        obj.id, obj.prefix, obj.owner, obj.name = key.id, key.prefix, key.owner, key.name
        setattr(request, _ISSUED, [issued])

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        """The page showing the new key's plaintext, once."""
        return self._show_issued(request, getattr(request, _ISSUED, []), "Key issued")

    def _show_issued(
        self, request: HttpRequest, issued: list[IssuedKey], title: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "issued": [(item.key, item.plaintext) for item in issued],
        }
        response = TemplateResponse(request, self.issued_template, context)
        add_never_cache_headers(response)
        patch_cache_control(response, no_store=True, private=True)
        return response

    # --- actions ------------------------------------------------------------------------

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Revoke each selected key at once (final)."""
        manager = get_manager()
        user = getattr(request, "user", None)
        reason = (
            f"revoked in the admin by {user.get_username()}" if user else "revoked in the admin"
        )
        done = 0
        for key_id in queryset.values_list("pk", flat=True):
            try:
                manager.revoke(key_id, reason=reason)
            except APIKeyError as exc:
                self.message_user(request, f"{key_id}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"Revoked {done} key(s).", messages.SUCCESS)

    @admin.action(
        description="Rotate the selected keys (show the new keys once)", permissions=["change"]
    )
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        """Issue a successor for each selected key; the old one keeps working for
        ``APIKEYS['ROTATION_GRACE']``. Answers with the new plaintexts, once."""
        manager = get_manager()
        grace = get_settings().rotation_grace
        issued: list[IssuedKey] = []
        for key_id in queryset.values_list("pk", flat=True):
            try:
                issued.append(manager.rotate(key_id, grace=grace))
            except APIKeyError as exc:
                self.message_user(request, f"{key_id}: {exc.message}", messages.ERROR)
        if not issued:
            return None
        return self._show_issued(request, issued, "Keys rotated")

    # --- deleting -----------------------------------------------------------------------

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        """Purge through the manager (the audit trail loses the key)."""
        get_manager().purge(obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Purge each selected key through the manager."""
        manager = get_manager()
        for key_id in queryset.values_list("pk", flat=True):
            manager.purge(key_id)
