"""Lazy migration: the Kinde workflow (package data in ``workflow/``) that moves, at sign-in, the
users whose Clerk password Kinde cannot import, by asking Clerk to verify the typed password."""
