"""Propagation: noise and simple link channels (scene geometry and echoes come later)."""

from sdr_isac.channel.awgn import add_awgn, apply_taps, noise_var_for_snr

__all__ = ["add_awgn", "apply_taps", "noise_var_for_snr"]
