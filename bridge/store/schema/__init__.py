"""Numbered SQL migrations of the store schema."""
