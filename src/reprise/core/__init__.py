"""The pure core: config and overrides, settings, manifests and their comparison, divergence
reports, metrics, image plans and Dockerfile rendering, templating, the bundle format, the run
record and its names, errors.

Nothing here talks to Docker, git, a remote host or the run store: functions take values and
return values (templates are read from the installed package). Core imports only core.
"""
