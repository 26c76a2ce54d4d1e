"""Which TensorRT runs where, and where DLA exists: NVIDIA's support statements as one table of data. Pure,
torch-free, imports nothing from deployconv but errors, so targets, `check` and `build-engine` all read it.

Two tables, every row with its source:
- TRT_BANDS: TensorRT version bands and whether DLA exists in them (on Jetson).
- JETPACK_ROWS: per Jetson family and JetPack range, the TensorRT it runs and whether DLA is available there.

What "TensorRT 10.7 was the last 10.x release with DLA" means (NVIDIA's 11.x "Working with DLA" pages): the
JetPack builds of TensorRT 10 stop at 10.7 (the 10.10 and 10.14.1 support matrices list "NVIDIA JetPack
(10.7.x)"; the 10.8+ release notes cover x86, Windows and SBSA only). JetPack 6.1/6.2 ship 10.3, so Orin DLA on
TensorRT 10 means 10.0 to 10.7 on JetPack 6.x. JetPack 7.x use SBSA TensorRT builds (10.13, 10.16), which have no
DLA; Thor has no DLA at all. DLA returns with TensorRT 11.4.1 on AGX Orin under JetPack >= 7.2.2.

Refusals (`target_refusals`) are the impossible combinations a target can declare: DLA over a TensorRT range
that reaches a band without DLA, DLA on Thor, and a JetPack 6 target reaching TensorRT 11.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployconv.core.compat import OPEN, Version, parse_version
from deployconv.core.compat import upper_bound as _upto
from deployconv.core.errors import BadInputError

MIGRATION_11_4_1 = "https://docs.nvidia.com/deeplearning/tensorrt/11.4.1/api/migration/tensorrt-10x-to-11x-jetson.html"
MIGRATION_11_3_0 = "https://docs.nvidia.com/deeplearning/tensorrt/11.3.0/api/migration/tensorrt-10x-to-11x-jetson.html"
MIGRATION_11_2_1 = "https://docs.nvidia.com/deeplearning/tensorrt/11.2.1/api/migration/tensorrt-10x-to-11x-jetson.html"
MIGRATION_11_0_0 = "https://docs.nvidia.com/deeplearning/tensorrt/11.0.0/api/migration/tensorrt-10x-to-11x-jetson.html"
DLA_11_4_1 = "https://docs.nvidia.com/deeplearning/tensorrt/11.4.1/inference-library/work-with-dla.html"
DLA_11_4_0 = "https://docs.nvidia.com/deeplearning/tensorrt/11.4.0/inference-library/work-with-dla.html"
DLA_11_3_0 = "https://docs.nvidia.com/deeplearning/tensorrt/11.3.0/inference-library/work-with-dla.html"
MATRIX_10_14_1 = "https://docs.nvidia.com/deeplearning/tensorrt/latest/getting-started/support-matrix-10/10.14.1.html"
NOTES_10_8_0 = "https://docs.nvidia.com/deeplearning/tensorrt/10.8.0/getting-started/release-notes.html"
SHARED_FACTS = "shared/facts/tensorrt.md (JetPack -> TensorRT table, from NVIDIA's JetPack archive)"


@dataclass(frozen=True)
class Source:
    where: str  # URL (or the fact file) the row comes from
    says: str  # what it says, in short


@dataclass(frozen=True)
class TrtBand:
    """TensorRT versions lo..hi (inclusive) and DLA on Jetson in them."""

    lo: Version
    hi: Version
    dla: bool
    what: str
    source: Source

    @property
    def label(self) -> str:
        return _range_label(self.lo, self.hi)


@dataclass(frozen=True)
class JetPackRow:
    """A Jetson family on JetPack jp_lo..jp_hi runs TensorRT trt_lo..trt_hi; DLA there or not."""

    family: str  # "jetson-orin" | "jetson-thor" | "jetson-xavier"
    jp_lo: Version
    jp_hi: Version
    trt_lo: Version
    trt_hi: Version
    trt_shipped: str  # the TensorRT the JetPack installs
    dla: bool
    dla_typing: str | None  # "builder flags" | "strongly typed" | None (no DLA)
    source: Source
    note: str = ""

    @property
    def jetpack_label(self) -> str:
        return _range_label(self.jp_lo, self.jp_hi)

    @property
    def trt_label(self) -> str:
        return _range_label(self.trt_lo, self.trt_hi)


def _fmt(v: Version, exact: bool = False) -> str:
    shown = [str(p) for p in v if p != OPEN]
    while not exact and len(shown) > 2 and shown[-1] == "0":
        shown.pop()
    return ".".join(shown) + (".x" if OPEN in v[1:] and len(shown) < 3 else "")


def _range_label(lo: Version, hi: Version) -> str:
    if hi[0] == OPEN:
        return f"{_fmt(lo)}+"
    if lo == hi:
        return _fmt(lo, exact=True)
    return _fmt(lo) if _fmt(lo) + ".x" == _fmt(hi) else f"{_fmt(lo)} to {_fmt(hi)}"


_DLA_10_7 = Source(DLA_11_4_1, "TensorRT 10.7 was the last 10.x release that supported DLA")
TRT_BANDS: tuple[TrtBand, ...] = (
    TrtBand(parse_version("8.5"), _upto("8.6"), True, "JetPack 5.1 (8.5.2) and 6.0 (8.6): DLA with precision builder flags",
            Source(SHARED_FACTS, "JetPack 5.1.x ships 8.5.2, JetPack 6.0 ships 8.6; Xavier and Orin have DLA")),
    TrtBand(parse_version("10.0"), _upto("10.7"), True, "JetPack builds of TensorRT 10 (JetPack 6.1/6.2 ship 10.3): DLA with "
            "precision builder flags", _DLA_10_7),
    TrtBand(parse_version("10.8"), _upto("10"), False, "x86, Windows and SBSA builds only (JetPack 7.x uses the SBSA build): "
            "no DLA", Source(MATRIX_10_14_1, "the 10.x support matrices list NVIDIA JetPack at 10.7.x; 10.8 release "
                             "notes apply to x86 Linux, Windows and SBSA; 10.7 was the last 10.x release with DLA")),
    TrtBand(parse_version("11.0"), _upto("11.3"), False, "no DLA anywhere",
            Source(DLA_11_4_1, "DLA was unavailable in TensorRT 11.0 through 11.3")),
    TrtBand(parse_version("11.4.0"), parse_version("11.4.0"), False, "DLA only on Windows on ARM (beta, no GPU fallback, batch 1): none on "
            "Jetson", Source(DLA_11_4_0, "Not supported: Linux SBSA, NVIDIA JetPack, and NVIDIA DriveOS deployments")),
    TrtBand(parse_version("11.4.1"), _upto(str(OPEN)), True, "DLA on Jetson AGX Orin under JetPack >= 7.2.2, strongly typed "
            "(precision from the ONNX tensor types)",
            Source(DLA_11_4_1, "Supported: NVIDIA Jetson AGX Orin when using NVIDIA JetPack 7.2.2 or later ... "
                               "strongly typed networks")),
)

JETPACK_ROWS: tuple[JetPackRow, ...] = (
    JetPackRow("jetson-xavier", parse_version("5.1"), _upto("5.1"), parse_version("8.5"), _upto("8.5"), "8.5.2", True, "builder flags",
               Source(SHARED_FACTS, "JetPack 5.1.x: TensorRT 8.5.2, CUDA 11.4")),
    JetPackRow("jetson-orin", parse_version("5.1"), _upto("5.1"), parse_version("8.5"), _upto("8.5"), "8.5.2", True, "builder flags",
               Source(SHARED_FACTS, "JetPack 5.1.x: TensorRT 8.5.2, CUDA 11.4")),
    JetPackRow("jetson-orin", parse_version("6.0"), _upto("6.0"), parse_version("8.6"), _upto("8.6"), "8.6", True, "builder flags",
               Source(SHARED_FACTS, "JetPack 6.0: TensorRT 8.6, CUDA 12.2")),
    JetPackRow("jetson-orin", parse_version("6.1"), _upto("6"), parse_version("10.3"), _upto("10.7"), "10.3", True, "builder flags",
               Source(MIGRATION_11_4_1, "Jetson Orin on NVIDIA JetPack 6.x is not supported in TensorRT 11.4.1. Those "
                                        "deployments must remain on a TensorRT 10.x release"),
               "JetPack 6.1/6.2 ship 10.3; NVIDIA's JetPack build of TensorRT 10 went up to 10.7"),
    JetPackRow("jetson-orin", parse_version("7.2"), parse_version("7.2.1"), parse_version("10.16"), _upto("10.16"), "10.16", False, None,
               Source(MIGRATION_11_3_0, "Jetson Orin/Thor (JetPack 7.x): remain on a TensorRT 10.x release ... "
                                        "TensorRT 10.7 was the last DLA release"),
               "the SBSA build of TensorRT 10 has no DLA"),
    JetPackRow("jetson-orin", parse_version("7.2.2"), _upto(str(OPEN)), parse_version("11.4.1"), _upto(str(OPEN)), "11.4.1", True,
               "strongly typed",
               Source(MIGRATION_11_4_1, "TensorRT 11.4.1 supports NVIDIA JetPack 7.2.2 or later on Jetson AGX Orin and "
                                        "Jetson Thor ... restores DLA support, on Jetson AGX Orin only"),
               "DLA on AGX Orin only; the precision comes from the ONNX tensor types (no FP16/INT8 flags)"),
    JetPackRow("jetson-thor", parse_version("7.0"), _upto("7.1"), parse_version("10.13"), _upto("10.13"), "10.13", False, None,
               Source(SHARED_FACTS, "JetPack 7.0/7.1 (Thor): TensorRT 10.13, CUDA 13.0; Thor has no DLA"),
               "TensorRT 11.0's Jetson page listed Thor on JetPack 7 with TensorRT 11; 11.1 to 11.3 support no JetPack"),
    JetPackRow("jetson-thor", parse_version("7.2"), parse_version("7.2.1"), parse_version("10.16"), _upto("10.16"), "10.16", False, None,
               Source(SHARED_FACTS, "JetPack 7.2: TensorRT 10.16, CUDA 13.2; Thor has no DLA")),
    JetPackRow("jetson-thor", parse_version("7.2.2"), _upto(str(OPEN)), parse_version("11.4.1"), _upto(str(OPEN)), "11.4.1", False, None,
               Source(DLA_11_4_1, "Not supported: NVIDIA Jetson Thor, which has no DLA. Install the SBSA build for GPU "
                                  "inference")),
)

THOR_SMS = (101, 110)  # Thor is sm_101 before CUDA 13 renamed it sm_110
DLA_TRT10 = ("10.0", "10.7")  # the TensorRT 10 range with DLA
DLA_TRT11 = "11.4.1"  # DLA again from here (AGX Orin, JetPack >= 7.2.2)


def band_of(version: str | Version) -> TrtBand | None:
    v = version if isinstance(version, tuple) else parse_version(version)
    return next((b for b in TRT_BANDS if b.lo <= v <= b.hi), None)


def dla_available(version: str | Version) -> bool | None:
    """DLA in this TensorRT on Jetson: True / False, None when the table has no row for it (9.x)."""
    band = band_of(version)
    return None if band is None else band.dla


def jetpack_rows(family: str, jetpack: str) -> list[JetPackRow]:
    v = parse_version(jetpack)
    return [r for r in JETPACK_ROWS if r.family == family and r.jp_lo <= v <= r.jp_hi]


def _bounds(lo: str | None, hi: str | None) -> tuple[Version, Version]:
    return (parse_version(lo) if lo else (0, 0, 0)), (_upto(hi) if hi else (OPEN, OPEN, OPEN))


def bands_in(lo: str | None, hi: str | None) -> list[TrtBand]:
    """The bands a TensorRT range lo..hi (None = open) reaches."""
    a, b = _bounds(lo, hi)
    return [band for band in TRT_BANDS if band.lo <= b and a <= band.hi]


def _jetpack_entry(text: str) -> Version:
    return parse_version(text.rstrip("+"))


@dataclass(frozen=True)
class Refusal:
    """An impossible combination: what, why (the table row), the nearest valid choice."""

    what: str
    why: str
    nearest: str

    def error(self, where: str) -> BadInputError:
        return BadInputError(f"{where}: {self.what}", why=self.why, fix=f"nearest valid choice: {self.nearest}")


def _dla_nearest(lo: str | None, precision: str) -> str:
    low = parse_version(lo) if lo else (0, 0, 0)
    if low <= _upto(DLA_TRT10[1]):
        return (f'max_version = "{DLA_TRT10[1]}" (TensorRT 10.x with DLA, JetPack 6.1/6.2: the built-in '
                f'jetson-orin-dla-{precision}), or min_version = "{DLA_TRT11}" (JetPack >= 7.2.2: '
                f"jetson-orin-dla-{precision}-trt11)")
    return (f'min_version = "{DLA_TRT11}" (AGX Orin, JetPack >= 7.2.2: the built-in jetson-orin-dla-{precision}-trt11)')


def target_refusals(*, family: str | None, jetpack: tuple[str, ...], sm: tuple[int, ...], min_trt: str | None,
                    max_trt: str | None, dla: bool, precision: str = "fp16") -> list[Refusal]:
    """The impossible combinations in a target's declaration (empty: none). Pure."""
    out: list[Refusal] = []
    thor = family == "jetson-thor" or (bool(sm) and set(sm) <= set(THOR_SMS))
    if dla and thor:
        out.append(Refusal("a DLA target on Jetson Thor", "Thor has no DLA (" + DLA_11_4_1 + ")",
                           "jetson-thor-fp16 (Thor's GPU), or a jetson-orin-dla-* target for DLA on Orin"))
    elif dla:
        dark = [b for b in bands_in(min_trt, max_trt) if not b.dla]
        if dark and min_trt and min_trt == max_trt:  # one TensorRT version: the nearest ones with DLA
            out.append(Refusal(
                f"TensorRT {min_trt} has no DLA on Jetson", f"{dark[0].label}: {dark[0].what} ({dark[0].source.where})",
                f"TensorRT {DLA_TRT10[1]} or older (JetPack 6.1/6.2: the built-in jetson-orin-dla-{precision}), or "
                f"TensorRT {DLA_TRT11}+ (AGX Orin, JetPack >= 7.2.2: jetson-orin-dla-{precision}-trt11)"))
        elif dark:
            span = f"{min_trt or 'any'} to {max_trt or 'any newer'}"
            out.append(Refusal(
                f"a DLA target for TensorRT {span} reaches TensorRT "
                + ", ".join(b.label for b in dark) + " where Jetson has no DLA",
                "; ".join(f"{b.label}: {b.what} ({b.source.where})" for b in dark),
                _dla_nearest(min_trt, precision)))
    jp6 = [j for j in jetpack if _jetpack_entry(j)[0] == 6]
    if jp6 and _bounds(min_trt, max_trt)[1] >= (11, 0, 0):
        out.append(Refusal(
            f"a JetPack {'/'.join(jp6)} target for TensorRT {min_trt or 'any'} to {max_trt or 'any newer'} reaches "
            "TensorRT 11",
            f"Jetson Orin on JetPack 6.x stays on TensorRT 10.x ({MIGRATION_11_4_1})",
            'max_version = "10.7" for JetPack 6, or jetpack = ["7.2.2+"] with min_version = "11.4.1" for TensorRT 11'))
    return out


@dataclass(frozen=True)
class DeviceVerdict:
    """What the table says about a detected (family, JetPack, TensorRT) and the target's wish for DLA."""

    ok: bool | None  # None: the table has no row for this JetPack
    found: str
    expected: str
    fix: str = ""


def device_verdict(family: str, jetpack: str, trt: str, *, wants_dla: bool, model: str = "") -> DeviceVerdict:
    """Check a detected device against the table (what `deployconv check` reports). Pure."""
    rows = jetpack_rows(family, jetpack)
    found = f"{family} on JetPack {jetpack} with TensorRT {trt}"
    if not rows:
        return DeviceVerdict(None, found, f"a JetPack release the table lists for {family}",
                             "compare with NVIDIA's JetPack archive by hand")
    v = parse_version(trt)
    row = next((r for r in rows if r.trt_lo <= v <= r.trt_hi), None)
    expected = "; ".join(f"JetPack {r.jetpack_label}: TensorRT {r.trt_label}"
                         + (f", DLA ({r.dla_typing})" if r.dla else ", no DLA") for r in rows)
    if row is None:
        return DeviceVerdict(False, found, expected, f"JetPack {jetpack} runs TensorRT {rows[0].trt_label} "
                                                     f"({rows[0].source.where}): install that TensorRT")
    if wants_dla and not row.dla:
        return DeviceVerdict(False, found, expected + " (the target needs DLA)",
                             f"DLA is not available here ({row.source.says}); use the GPU target, or "
                             + ("JetPack 6.1/6.2 with TensorRT 10.3" if family == "jetson-orin"
                                else "a Jetson Orin for DLA"))
    if wants_dla and row.dla_typing == "strongly typed" and model and "agx orin" not in model.lower():
        return DeviceVerdict(False, found + f" ({model})", expected + " on AGX Orin only",
                             f"TensorRT {DLA_TRT11} has DLA on Jetson AGX Orin only ({DLA_11_4_1})")
    return DeviceVerdict(True, found, expected)
