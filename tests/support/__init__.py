"""Test helpers: a real server process on free ports, and an in-memory HTTP exchange."""
