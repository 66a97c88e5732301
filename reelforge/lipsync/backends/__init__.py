"""Lip-sync renderers, chosen by name."""
