"""``cellbox bench``: the benchmark suite (``suite``), its library worker (``worker``) and its
outputs (``report``). See benchmarks/README.md."""
