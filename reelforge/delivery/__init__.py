"""Serving published media: the origin app, cache policy, player page."""
