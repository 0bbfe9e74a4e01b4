"""Formwright: a self-hosted form builder with a reliable integration pipeline."""

__version__ = "0.1.0"
