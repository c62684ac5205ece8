"""What reprise does, one module per command (and the orchestration a test can call):
build, run and its lifecycle, reproduce and diff, push and bundles, show/ls/card/gc, init, ci.
Commands reach where runs execute only through :mod:`reprise.execution`."""
