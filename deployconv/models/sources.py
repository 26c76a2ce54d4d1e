"""User models: `path/to/file.py:factory` or `package.module:factory`, with the `example_inputs` (and `dims`)
the module declares next to the factory, if any."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from deployconv.core.errors import BadInputError


def _import_file(path: Path):
    if not path.is_file():
        raise BadInputError(f"model source file not found: {path}", fix="check the path before the ':'")
    mod_name = f"deployconv_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise BadInputError(f"cannot import {path}", fix="pass a Python file (.py)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise BadInputError(f"importing {path} failed: {type(e).__name__}: {e}",
                            fix="run the file with python to see the error") from e
    return module


def load_user_model(source: str, **kwargs: Any):
    """Import the source and call its factory; the result must be a torch.nn.Module."""
    import torch

    target, _, attr = source.rpartition(":")
    if not target or not attr:
        raise BadInputError(f"bad model source {source!r}", fix="use file.py:factory or package.module:factory")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise BadInputError(f"cannot import module {target!r}: {e}",
                                fix="install the package or use a file path (file.py:factory)") from None
    factory = getattr(module, attr, None)
    if factory is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise BadInputError(f"{target} has no attribute {attr!r}",
                            fix=f"callables defined there: {', '.join(public[:10]) or 'none'}")
    model = factory(**kwargs) if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    if not isinstance(model, torch.nn.Module):
        raise BadInputError(f"{source} returned {type(model).__name__}, not a torch.nn.Module",
                            fix="the factory must return the model (an nn.Module)")
    model.deployconv_name = source
    # The declared-inputs convention (deployconv.models.io): `example_inputs` (and `dims`) beside the factory.
    for attr_name, dest in (("example_inputs", "deployconv_example_inputs"), ("dims", "deployconv_example_dims")):
        value = getattr(module, attr_name, None)
        if value is not None:
            object.__setattr__(model, dest, value)
    return model
