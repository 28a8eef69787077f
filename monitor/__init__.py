"""inferwatch: a scheduled availability monitor for AI model endpoints."""

__version__ = "0.1.0"
