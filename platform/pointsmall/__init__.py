"""Pointsmall: a multi-tenant loyalty-points service."""
