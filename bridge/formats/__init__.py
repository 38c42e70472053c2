"""Conversions between MAPI-shaped items and Internet formats (MIME messages)."""
