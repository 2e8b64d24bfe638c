"""``wganx bench``: the speed harness, the plain loops it compares with and the FLOP counter.

A distribution of its own (``wganx-bench``, in ``benchmarks/``), so that benchmark code and
the frameworks it imports stay out of the core; it adds its command through the
``wganx_commands`` hook, as a third-party plugin would.
"""
