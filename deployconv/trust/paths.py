"""Which relative paths a manifest may name: the rule lives with the manifest's schema
(deployconv.core.artifacts.paths); re-exported here for the trust checks that judge each path."""

from deployconv.core.artifacts.paths import is_safe, path_problem

__all__ = ["is_safe", "path_problem"]
