"""Crowd transforms: Algorithm 2's nested crops (crops.py), head points -> density maps (density.py),
and the synthetic crowds that make the embedded default (synthetic.py)."""
