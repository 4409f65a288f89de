"""Named scenarios, the demo job and (later) Monte Carlo experiments and figures."""
