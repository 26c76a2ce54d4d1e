"""Targets are TOML data: every built-in file loads and validates; bad files get errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployconv.core.errors import BadInputError
from deployconv.core.target import TARGET_DIR, builtin_targets, get_target, load_target_file

ISSUE_TARGETS = {
    "onnx", "ort-cpu", "onnx-fp16", "onnx-int8", "ort-cpu-int8", "trt-fp32", "trt-fp16", "trt-int8", "trt-bf16",
    "jetson-orin-fp16", "jetson-orin-int8", "jetson-orin-dla-fp16", "jetson-orin-dla-int8", "jetson-thor-fp16",
    "jetson-xavier-fp16",
}


def test_every_target_the_issues_name_is_built_in():
    assert set(builtin_targets()) >= ISSUE_TARGETS


@pytest.mark.parametrize("name", sorted(ISSUE_TARGETS))
def test_builtin_target_is_consistent(name):
    t = get_target(name)
    assert t.name == name and t.source == "built-in"
    if t.runtime == "tensorrt":
        assert t.tensorrt is not None, "a TensorRT target states its version range and plugin archs"
    if t.precision == "int8":
        assert t.quant is not None
    if t.uses_dla:
        assert not t.dynamic_batch and t.batch == 1 and t.precision in ("fp16", "int8")
    if t.device and t.device.family == "jetson-orin":
        assert t.tensorrt.plugin_archs == (87,) and t.device.sm == (87,)


def test_thor_has_no_dla_and_xavier_says_what_is_unsupported():
    assert not get_target("jetson-thor-fp16").device.has_dla
    xavier = get_target("jetson-xavier-fp16")
    assert xavier.lowering == "standard" and xavier.tensorrt.plugin_archs == ()
    assert any("IPluginV3" in n for n in xavier.device.notes)


def test_user_target_file(tmp_path: Path):
    src = (TARGET_DIR / "jetson-orin-fp16.toml").read_text().replace('"jetson-orin-fp16"', '"my-orin"')
    path = tmp_path / "my-orin.toml"
    path.write_text(src.replace("max_batch = 16", "max_batch = 4"))
    t = get_target(str(path))
    assert t.name == "my-orin" and t.max_batch == 4 and t.source == str(path)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda s: s.replace('precision = "fp16"', 'precision = "fp8"'), "precision"),
    (lambda s: s + "\nbogus = 1\n", "bogus"),
    (lambda s: s.replace("[tensorrt]", "[tensorrt]\ndla_cores = 1"), "dla_cores"),
    (lambda s: s.replace("dynamic_batch = true", "dynamic_batch = true\nbach = 2"), "bach"),
    (lambda s: s.replace("[tensorrt]", "[tensorrt]\ndla_core = 0"), "DLA with a dynamic batch"),
    (lambda s: s.replace("name =", "name = = "), "not valid TOML"),
])
def test_bad_target_file_names_the_problem(tmp_path: Path, edit, needle):
    path = tmp_path / "t.toml"
    path.write_text(edit((TARGET_DIR / "jetson-orin-fp16.toml").read_text()))
    with pytest.raises(BadInputError) as e:
        load_target_file(path)
    assert needle in e.value.render() and e.value.exit_code == 2


def test_unknown_target_suggests_close_names():
    with pytest.raises(BadInputError) as e:
        get_target("jetson-orin-fp61")
    assert "jetson-orin-fp16" in e.value.render()


def test_missing_target_file():
    with pytest.raises(BadInputError, match="cannot be read"):
        get_target("/nonexistent/t.toml")
