"""The shop's URLs."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from apikeys.django import get_manager
from apikeys.django.admin import use_monitor
from apikeys.monitoring import Monitor
from shop import views

# The admin's usage dashboard reads this monitor (it counts this process's traffic).
use_monitor(Monitor(get_manager()))

urlpatterns = [
    path("", views.index),
    path("orders/", views.orders),
    path("orders/new/", views.new_order),
    path("orders/<int:order_id>/", views.OrderView.as_view()),
    path("async/orders/", views.async_orders),
    path("api/orders/", views.OrdersAPI.as_view()),
    path("admin/", admin.site.urls),
]
