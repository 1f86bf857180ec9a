"""Websocket routes: each app lists its own consumers."""

from approvals.routing import websocket_urlpatterns as approval_routes
from classification.routing import websocket_urlpatterns as scan_routes

websocket_urlpatterns = [*scan_routes, *approval_routes]
