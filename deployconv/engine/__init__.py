"""ONNX -> TensorRT engine: profiles, precision per TensorRT major, timing cache, DLA, compatibility flags.

`build_engine(onnx, target, out)` is the front door. The decisions (EngineSpec -> BuildRecipe) are pure and
torch-free; tensorrt is imported only inside the build, so this package imports on any machine.
"""

from deployconv.engine.builder import ENGINE_FILE, build_engine, parser_failure, recipe_for
from deployconv.engine.onnx_facts import InputFact, OnnxFacts, facts_from_model, read_onnx_facts
from deployconv.engine.precision import PrecisionChoice, choose_precision
from deployconv.engine.profiles import Profile, ShapeRange, make_profile
from deployconv.engine.recipe import BuildRecipe, TrtVersion, make_recipe
from deployconv.engine.spec import EngineSpec, engine_spec_for
from deployconv.engine.trtexec import trtexec_argv, trtexec_command, trtexec_run_argv, trtexec_run_command

__all__ = [
           "ENGINE_FILE",
           "BuildRecipe",
           "EngineSpec",
           "InputFact",
           "OnnxFacts",
           "PrecisionChoice",
           "Profile",
           "ShapeRange",
           "TrtVersion",
           "build_engine",
           "choose_precision",
           "engine_spec_for",
           "facts_from_model",
           "make_profile",
           "make_recipe",
           "parser_failure",
           "read_onnx_facts",
           "recipe_for",
           "trtexec_argv",
           "trtexec_command",
           "trtexec_run_argv",
           "trtexec_run_command",
]
