"""Graph-level structural reparameterization: fusions found by their shape in the torch.fx graph.

forms.py   each linear op (conv, BatchNorm, average pool, identity, per-channel scale/shift, DBB's BNAndPad) as
           one fp64 convolution, or a refusal with its reason;
algebra.py sequential composition and parallel merging of those forms (exact, or refused);
trace.py   fx tracing, the whole model or child by child;
match.py   sites (the largest exact, affordable expressions) and near misses in one traced unit;
rewrite.py one site replaced by one nn.Conv2d, after its fp64 check on the probe's activations;
fuse.py    the pass over a model (run by reparam.walker.reparameterize after the method rewrites).
"""

from deployconv.reparam.graph.fuse import GraphFuseResult, graph_fuse

__all__ = ["GraphFuseResult", "graph_fuse"]
