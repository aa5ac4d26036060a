"""Helpers that compiled code of more than one stage shares."""
