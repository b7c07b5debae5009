"""The URLconf (and views) the Django adapter tests call."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views import View
from rest_framework import viewsets
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from apikeys.django import APIKeyRequiredMixin, current_key, get_manager, require_key
from apikeys.django.rest_framework import APIKeyAuthentication, HasAPIKey


def _who(request: HttpRequest, **extra: Any) -> JsonResponse:
    key = request.api_key  # type: ignore[attr-defined]
    return JsonResponse({"owner": key.owner, "key_id": key.id, **extra})


@require_key("orders:read")
def orders(request: HttpRequest) -> JsonResponse:
    return _who(request)


@require_key("orders:read")
def order(request: HttpRequest, pk: int) -> JsonResponse:
    return _who(request, order=pk)


@require_key("orders:write")
def create_order(request: HttpRequest) -> JsonResponse:
    return _who(request, created=True)


@require_key
def anyone(request: HttpRequest) -> JsonResponse:
    return _who(request)


@require_key("orders:read")
async def async_orders(request: HttpRequest) -> JsonResponse:
    return _who(request, kind="async")


@require_key()
def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


def public(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"public": True})


def lazy(request: HttpRequest) -> JsonResponse:
    """Unprotected; reads the middleware's lazy ``request.api_key``."""
    key = request.api_key  # type: ignore[attr-defined]
    return JsonResponse(
        {"owner": key.owner if key else None, "plain": current_key(request) is None}
    )


async def async_lazy(request: HttpRequest) -> JsonResponse:
    key = await request.aapi_key()  # type: ignore[attr-defined]
    return JsonResponse({"owner": key.owner if key else None})


def lookup(request: HttpRequest, key_id: str) -> JsonResponse:
    """Unprotected; an APIKeyError escaping it is answered by the middleware."""
    return JsonResponse({"owner": get_manager().get(key_id).owner})


class OrdersView(APIKeyRequiredMixin, View):
    required_scopes: ClassVar[dict[str, list[str]]] = {
        "GET": ["orders:read"],
        "POST": ["orders:write"],
    }

    def get(self, request: HttpRequest) -> JsonResponse:
        return _who(request, method="GET")

    def post(self, request: HttpRequest) -> JsonResponse:
        return _who(request, method="POST")


class AsyncOrdersView(APIKeyRequiredMixin, View):
    required_scopes = ("orders:read",)

    async def get(self, request: HttpRequest) -> JsonResponse:
        return _who(request, kind="async-cbv")


class DRFOrders(APIView):
    required_scopes: ClassVar[dict[str, list[str]]] = {
        "GET": ["orders:read"],
        "*": ["orders:write"],
    }

    def get(self, request: Request) -> Response:
        return Response({"owner": request.auth.owner, "user": str(request.user)})

    def post(self, request: Request) -> Response:
        return Response({"created": True, "owner": request.user.get_username()}, status=201)


class DRFOrderViewSet(viewsets.ViewSet):
    required_scopes: ClassVar[dict[str, list[str]]] = {
        "list": ["orders:read"],
        "create": ["orders:write"],
    }

    def list(self, request: Request) -> Response:
        return Response([{"owner": request.auth.owner}])

    def create(self, request: Request) -> Response:
        return Response({"created": True}, status=201)


class DRFAuthenticatedOnly(APIView):
    """Our authentication with DRF's own IsAuthenticated."""

    authentication_classes = (APIKeyAuthentication,)
    permission_classes = (IsAuthenticated,)

    def get(self, request: Request) -> Response:
        return Response({"owner": request.auth.owner})


class TicketPermission(BasePermission):
    """Stands for another scheme (say, a legacy key) composed with ``|``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.headers.get("X-Ticket") == "valid-ticket"


class DRFEither(APIView):
    permission_classes = (HasAPIKey | TicketPermission,)
    required_scopes = ("orders:read",)

    def get(self, request: Request) -> Response:
        return Response({"owner": request.auth.owner if request.auth else None})


class DRFRaises(APIView):
    def get(self, request: Request) -> Response:
        get_manager().get("0000000000000000")
        return Response({})


router = SimpleRouter()
router.register("drf/viewset", DRFOrderViewSet, basename="orders")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("public/", public),
    path("orders/", orders),
    path("orders/<int:pk>/", order),
    path("orders/create/", create_order),
    path("anyone/", anyone),
    path("async/orders/", async_orders),
    path("boom/", boom),
    path("lazy/", lazy),
    path("async/lazy/", async_lazy),
    path("lookup/<str:key_id>/", lookup),
    path("cbv/orders/", OrdersView.as_view()),
    path("async/cbv/orders/", AsyncOrdersView.as_view()),
    path("drf/orders/", DRFOrders.as_view()),
    path("drf/authenticated/", DRFAuthenticatedOnly.as_view()),
    path("drf/raises/", DRFRaises.as_view()),
    path("drf/either/", DRFEither.as_view()),
    *router.urls,
]
