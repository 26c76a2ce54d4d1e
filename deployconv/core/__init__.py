"""The bottom layer, torch-free, imported by everything: errors and exit codes, atomic file writes and the one file
hash (fsio), the console, targets and the one chain-budget rule (target), what an export directory holds
(artifacts), version ranges and GPU-arch fit (compat), the one probe of this machine (env), input specs and output
names (io_spec, outputs), reference.npz (reference) and the sourced support matrix. It imports nothing above it."""
