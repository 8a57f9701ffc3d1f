"""gpucloud benchmarks: ``python -m benchmarks`` (or ``make bench``); ``--smoke`` for a tiny run without targets."""
