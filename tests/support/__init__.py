"""Shared test support: the cached test guest (:mod:`tests.support.guest`) and its helpers."""
