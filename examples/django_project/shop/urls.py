"""The shop's URLs."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from shop import views

urlpatterns = [
    path("", views.index),
    path("orders/", views.orders),
    path("orders/new/", views.new_order),
    path("orders/<int:order_id>/", views.OrderView.as_view()),
    path("async/orders/", views.async_orders),
    path("api/orders/", views.OrdersAPI.as_view()),
    path("admin/", admin.site.urls),
]
