"""Views: public, read- and write-scoped function views, a class-based view, an
async view and a DRF view — each gets the caller's key as ``request.api_key``."""

from __future__ import annotations

import json
from typing import ClassVar

from django.http import HttpRequest, JsonResponse
from django.views import View
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.django import APIKeyRequiredMixin, require_key

ORDERS = [{"id": 1, "item": "tea", "qty": 2}, {"id": 2, "item": "cups", "qty": 6}]


def index(request: HttpRequest) -> JsonResponse:
    """Public: no key needed. ``request.api_key`` is falsy without a valid key."""
    key = request.api_key  # type: ignore[attr-defined]
    return JsonResponse({"shop": "open", "caller": key.owner if key else None})


@require_key("orders:read")
def orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"orders": ORDERS, "owner": request.api_key.owner})  # type: ignore[attr-defined]


@require_key("orders:write")
def new_order(request: HttpRequest) -> JsonResponse:
    data = json.loads(request.body or b"{}")
    order = {"id": len(ORDERS) + 1, "item": data.get("item", "?"), "qty": data.get("qty", 1)}
    return JsonResponse(order, status=201)


class OrderView(APIKeyRequiredMixin, View):
    required_scopes: ClassVar[dict[str, list[str]]] = {
        "GET": ["orders:read"],
        "DELETE": ["orders:write"],
    }

    def get(self, request: HttpRequest, order_id: int) -> JsonResponse:
        found = [o for o in ORDERS if o["id"] == order_id]
        return JsonResponse(found[0] if found else {}, status=200 if found else 404)

    def delete(self, request: HttpRequest, order_id: int) -> JsonResponse:
        return JsonResponse({"deleted": order_id})


@require_key("orders:read")
async def async_orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"orders": ORDERS, "async": True})


class OrdersAPI(APIView):
    """DRF: ``request.auth`` is the key; scopes per method."""

    required_scopes: ClassVar[dict[str, list[str]]] = {
        "GET": ["orders:read"],
        "POST": ["orders:write"],
    }

    def get(self, request: Request) -> Response:
        return Response({"orders": ORDERS, "owner": request.auth.owner})

    def post(self, request: Request) -> Response:
        return Response({"id": len(ORDERS) + 1, **request.data}, status=201)
