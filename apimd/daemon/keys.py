"""Typed keys of the daemon's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from apimd.daemon.service import MonitorService
from apimd.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SERVICE = web.AppKey("service", MonitorService)
