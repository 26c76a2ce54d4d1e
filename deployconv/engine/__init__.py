"""ONNX -> TensorRT engine: profiles, precision per TensorRT major, timing cache, DLA, compatibility flags.

`build_engine(onnx, target, out)` is the front door. The decisions (EngineSpec -> BuildPlan) are pure and
torch-free; tensorrt is imported only inside the build, so this package imports on any machine.
"""

from deployconv.engine.builder import ENGINE_FILE, build_engine, parser_failure, plan_build
from deployconv.engine.onnx_facts import InputFact, OnnxFacts, facts_from_model, read_onnx_facts
from deployconv.engine.plan import BuildPlan, TrtVersion, make_plan
from deployconv.engine.precision import PrecisionPlan, plan_precision
from deployconv.engine.profiles import Profile, ShapeRange, make_profile
from deployconv.engine.spec import EngineSpec, engine_spec_for
from deployconv.engine.trtexec import trtexec_argv, trtexec_command, trtexec_run_argv, trtexec_run_command

__all__ = ["ENGINE_FILE", "BuildPlan", "EngineSpec", "InputFact", "OnnxFacts", "PrecisionPlan", "Profile",
           "ShapeRange", "TrtVersion", "build_engine", "engine_spec_for", "facts_from_model", "make_plan",
           "make_profile", "parser_failure", "plan_build", "plan_precision", "read_onnx_facts", "trtexec_argv", "trtexec_command",
           "trtexec_run_argv", "trtexec_run_command"]
