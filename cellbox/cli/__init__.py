"""Command-line front ends: isolate's grammar (``--init/--run/--cleanup``) and subcommands."""
