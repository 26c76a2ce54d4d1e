"""Validation: the parity chain and its stages (metrics, budgets, attribution, bisection), latency statistics and the
environment fingerprint, the baseline gate, and the checks of an export directory (`export_dir`) and of a device
(`device`). Import what you need from its module; this package's own import loads nothing, so the torch-free parts
(latency, gate, the device check) stay torch-free.
"""
