"""apimd: a self-hosted, always-on API monitor for people who work in terminals."""

__version__ = "0.1.0"
