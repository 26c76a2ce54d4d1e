"""The version matrix (deployconv.core.support_matrix): every row answers what it says, every impossible combination is
refused before any work (exit 2, the nearest valid choice named, no traceback) by target loading, `export`,
`bundle` and `build-engine`, and the built-in targets are all possible."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployconv.cli.app import app
from deployconv.core.errors import BadInputError
from deployconv.core.support_matrix import (
    JETPACK_ROWS,
    OPEN,
    TRT_BANDS,
    band_of,
    bands_in,
    device_verdict,
    dla_available,
    jetpack_rows,
    target_refusals,
)
from deployconv.core.target import TARGET_DIR, builtin_targets, get_target, platform_refusals

runner = CliRunner()


def _text(v: tuple[int, int, int]) -> str:
    return ".".join(str(p) for p in v)


def _inside(lo: tuple[int, int, int], hi: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """The low end and a version near the top of lo..hi (an open top is probed at +5)."""
    top = tuple(lo[i] + 5 if hi[i] == OPEN else hi[i] for i in range(3))
    if hi[0] != OPEN and hi[1] == OPEN:
        top = (hi[0], lo[1] + 5 if hi[0] == lo[0] else 9, 0)
    elif hi[2] == OPEN and hi[1] != OPEN:
        top = (hi[0], hi[1], 9)
    return [lo, top]  # type: ignore[list-item]


@pytest.mark.parametrize("band", TRT_BANDS, ids=lambda b: b.label)
def test_every_tensorrt_band(band):
    assert band.source.where and band.source.says and band.what
    for v in _inside(band.lo, band.hi):
        assert band_of(v) == band and dla_available(_text(v)) is band.dla, v
    # a DLA target whose whole range is this band is refused exactly when the band has no DLA
    hi = None if band.hi[0] == OPEN else _text(band.hi).replace(str(OPEN), "99")
    refused = target_refusals(family="jetson-orin", jetpack=(), sm=(87,), min_trt=_text(band.lo), max_trt=hi,
                              dla=True)
    assert bool(refused) is (not band.dla), refused


def test_the_bands_do_not_overlap_and_9x_is_not_listed():
    for a, b in itertools.pairwise(TRT_BANDS):
        assert a.hi < b.lo
    assert dla_available("9.2") is None and dla_available("10.7.0") and not dla_available("10.8")
    assert [b.label for b in bands_in("10.3", None)] == ["10.0 to 10.7.x", "10.8 to 10.x", "11.0 to 11.3.x",
                                                          "11.4.0", "11.4.1+"]


@pytest.mark.parametrize("row", JETPACK_ROWS, ids=lambda r: f"{r.family}-jp{r.jetpack_label}-trt{r.trt_label}")
def test_every_jetpack_row(row):
    assert row.source.where and row.source.says
    jp = _text(row.jp_lo)
    assert row in jetpack_rows(row.family, jp)
    assert (row.dla_typing is None) is (not row.dla)
    model = "NVIDIA Jetson AGX " + row.family.removeprefix("jetson-").capitalize()
    shipped = device_verdict(row.family, jp, row.trt_shipped, wants_dla=False, model=model)
    assert shipped.ok is True, shipped
    dla = device_verdict(row.family, jp, row.trt_shipped, wants_dla=True, model=model)
    assert dla.ok is row.dla, dla
    if not row.dla:
        assert "DLA" in dla.fix
    below = (row.trt_lo[0], row.trt_lo[1] - 1, 0) if row.trt_lo[1] else (row.trt_lo[0] - 1, 9, 0)
    wrong = device_verdict(row.family, jp, _text(below), wants_dla=False, model=model)
    assert wrong.ok is False and "install that TensorRT" in wrong.fix, wrong


def test_the_table_reads_like_nvidias_statements():
    # Orin on JetPack 6 stays on 10.x; 11.4.1 needs JetPack >= 7.2.2 (AGX Orin and Thor); Thor never has DLA
    assert [r.trt_label for r in jetpack_rows("jetson-orin", "6.2")] == ["10.3 to 10.7.x"]
    assert [r.trt_shipped for r in jetpack_rows("jetson-orin", "7.2.2")] == ["11.4.1"]
    assert [r.trt_shipped for r in jetpack_rows("jetson-thor", "7.3")] == ["11.4.1"]
    assert not any(r.dla for r in JETPACK_ROWS if r.family == "jetson-thor")
    assert jetpack_rows("jetson-orin", "5.0") == [] and device_verdict("jetson-orin", "5.0", "8.4",
                                                                      wants_dla=False).ok is None


# --- refusals -------------------------------------------------------------------------------------------------

def _edit(name: str, *pairs: tuple[str, str]) -> str:
    text = (TARGET_DIR / f"{name}.toml").read_text().replace(f'name = "{name}"', 'name = "mine"')
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


MAX_10_7 = ('max_version = "10.7"  # the last TensorRT 10 with DLA and the last JetPack 6 build '
            "(deployconv/core/support_matrix.py)")
REFUSED = {
    "dla-reaches-11.0-11.3": (_edit("jetson-orin-dla-fp16", (MAX_10_7, 'max_version = "11.2"')),
                              "11.0 to 11.3.x", 'max_version = "10.7"'),
    "dla-reaches-11.4.0": (_edit("jetson-orin-dla-fp16-trt11", ('min_version = "11.4.1"', 'min_version = "11.4"')),
                           "11.4.0", 'min_version = "11.4.1"'),
    "dla-open-range": (_edit("jetson-orin-dla-int8", (MAX_10_7, "")), "10.8 to 10.x", "jetson-orin-dla-int8"),
    "dla-on-thor": (_edit("jetson-thor-fp16", ("[tensorrt]", "[tensorrt]\ndla_core = 0"),
                          ("dynamic_batch = true", "dynamic_batch = false\nbatch = 1"),
                          ("max_batch = 32", "")), "Thor", "jetson-thor-fp16"),
    "jetpack6-with-trt11": (_edit("jetson-orin-fp16", ('max_version = "10.7"  # JetPack 6 stays on TensorRT 10 '
                                                       '(deployconv/core/support_matrix.py)', "")),
                            "reaches TensorRT 11", 'jetpack = ["7.2.2+"]'),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_target_files_with_impossible_combinations_are_refused(tmp_path: Path, case):
    text, what, nearest = REFUSED[case]
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(BadInputError) as e:
        get_target(str(path))
    assert e.value.exit_code == 2 and what in e.value.what and nearest in e.value.fix, e.value.render()
    assert "nearest valid choice" in e.value.fix


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("command", ["export", "bundle", "build-engine"])
def test_commands_refuse_before_any_work(tmp_path: Path, case, command):
    text, what, nearest = REFUSED[case]
    target = tmp_path / "mine.toml"
    target.write_text(text)
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"not read: the target is refused first")
    args = {"export": ["export", "--model", "no_such_model", "--target", str(target), "--out", str(tmp_path / "o")],
            "bundle": ["bundle", "--model", "no_such_model", "--target", str(target), "--out", str(tmp_path / "b")],
            "build-engine": ["build-engine", str(onnx_file), "--target", str(target), "--plan-only"]}[command]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert what in res.output and nearest in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "b").exists()


def test_build_engine_plan_only_refuses_a_tensorrt_without_dla(tmp_path: Path):
    from tests.engine.graphs import conv_net
    from tests.runtime import save

    model = save(conv_net("fp16", batch=1), tmp_path / "model.onnx")
    res = runner.invoke(app, ["build-engine", str(model), "--target", "jetson-orin-dla-fp16", "--plan-only",
                              "--trt", "11.2"])
    assert res.exit_code == 2 and "TensorRT 11.2.0 has no DLA on Jetson" in res.output
    assert "jetson-orin-dla-fp16-trt11" in res.output and "Traceback" not in res.output
    ok = runner.invoke(app, ["build-engine", str(model), "--target", "jetson-orin-dla-fp16-trt11", "--plan-only",
                             "--json"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("name", sorted(builtin_targets()))
def test_every_builtin_target_is_a_possible_combination(name):
    assert platform_refusals(get_target(name)) == []
