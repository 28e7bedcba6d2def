"""Execution engines for jobs that scale out (`--engine ray`). Not a CLI command: no `register` here.

Nothing in this package imports Ray at module level except the ray_* modules, which only
the commands that use them import, so light commands stay fast.
"""
