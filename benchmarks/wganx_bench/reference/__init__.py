"""Plain hand-written WGAN-GP loops, one per framework, written the way the seeds write them:
what ``wganx bench`` compares wganx with (``make_step(spec)``)."""
