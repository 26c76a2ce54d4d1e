"""Test-session settings.

One torch thread per test process: the tests use small tensors, where OpenMP threads only add
synchronisation, and on a loaded 2-core runner a descheduled thread makes tiny ops 10-30x slower.
"""

import torch

torch.set_num_threads(1)
