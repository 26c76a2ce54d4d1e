"""Where each trtexec flag deployconv writes is defined: NVIDIA/TensorRT's own trtexec sources, by release
branch, commit, file and line, with the line quoted. Pure data.

`trtexec.py` writes only flags listed in PARSED for the TensorRT major it writes for (a test holds it to that),
and BEHAVIOUR records why each plugin flag is the right one (read in samples/trtexec/trtexec.cpp and
samples/common/sampleEngines.cpp):
- `--staticPlugins` only dlopens the library (trtexec's own `loadLibrary`, a DynamicLibrary wrapper): it works for
  libraries that register creators from a static initializer. deployconv's library exports `getCreators` and
  registers nothing statically, so the ONNX parser would not find DeployconvSKA & co. It is never written.
- `--dynamicPlugins` goes through `IPluginRegistry::loadLibrary` for the builder and again for the runtime that
  deserializes the plan: that calls `getCreators`. Building and running both need it.
- `--setPluginsToSerialize` puts the library into a version-compatible plan (`IBuilderConfig::setPluginsToSerialize`);
  `--ignoreParsedPluginLibs` stops trtexec from adding the parser's list on top, so the plan carries exactly what
  deployconv's plan says. A run of a plan that carries its plugins must not load them again: trtexec 10.16/11.x
  drop serialized libraries from the runtime's `--dynamicPlugins` themselves, 10.3 does not.
- Loading a version-compatible plan needs host code allowed: trtexec calls `setEngineHostCodeAllowed(true)` when
  `--versionCompatible` is given, also with `--loadEngine` (there is no `--allowHostCode`). A plan built with
  `--excludeLeanRuntime` needs `--leanDLLPath` (`IRuntime::loadRuntime`).
- Several optimization profiles: from 10.x, trtexec reads `--profile=N` (getOptimizationProfiles) and takes as
  profile N's shapes the --minShapes/--optShapes/--maxShapes found at the next argument positions: its loop moves
  `pos` one step per selector and getAndDelOptionBehind matches only `i->second.second - pos == 1`, so each
  profile is written `--profile=N --minShapes=.. --optShapes=.. --maxShapes=..` with nothing in between; without
  any --profile it falls back to one getShapesBuild set. 8.5 and 8.6 have no --profile (one getShapesBuild set,
  a single ShapeProfile), so a plan with several profiles has no trtexec line there.
- TensorRT 8.5's trtexec spells "build, do not run" `--buildOnly`; `--skipInference` exists from 8.6.
"""

from __future__ import annotations

from dataclasses import dataclass

REPO = "NVIDIA/TensorRT"
OPTIONS_FILE = "samples/common/sampleOptions.cpp"
ENGINES_FILE = "samples/common/sampleEngines.cpp"
TRTEXEC_FILE = "samples/trtexec/trtexec.cpp"
# release branch -> the commit read (git rev-parse of the branch in the mirror of NVIDIA/TensorRT)
COMMITS = {
    "8.5": "68b5072fdb9df6b6edab1392b02a705394b2e906",  # release/8.5
    "8.6": "a0215c1a16c6413c7ac566a498871a4fa36f6f62",  # release/8.6
    "10.3": "5b990f0a739d8faf962dfe54f4829942633c639c",  # release/10.3
    "10.16": "d0faf303ba766f20cd9fd8c413a112fc2e5a397b",  # release/10.16
    "11.1": "905361629f22836090d75ea77cba732a25107148",  # release/11.1
}


@dataclass(frozen=True)
class FlagSource:
    flag: str
    release: str  # the release/<release> branch of NVIDIA/TensorRT
    file: str
    line: int
    quote: str  # the line, stripped

    @property
    def commit(self) -> str:
        return COMMITS[self.release]

    @property
    def url(self) -> str:
        return f"https://github.com/{REPO}/blob/{self.commit}/{self.file}#L{self.line}"


def _p(flag: str, release: str, line: int, quote: str) -> FlagSource:
    return FlagSource(flag, release, OPTIONS_FILE, line, quote)


# Where trtexec's option parser reads each flag deployconv may write, per release branch.
PARSED: tuple[FlagSource, ...] = (
    _p('--onnx', '8.5', 653, 'if (getAndDelOption(arguments, "--onnx", model))'),
    _p('--onnx', '8.6', 703, 'if (getAndDelOption(arguments, "--onnx", model))'),
    _p('--onnx', '10.3', 977, 'if (getAndDelOption(arguments, "--onnx", model))'),
    _p('--onnx', '10.16', 1026, 'if (getAndDelOption(arguments, "--onnx", model))'),
    _p('--onnx', '11.1', 1012, 'if (getAndDelOption(arguments, "--onnx", model))'),
    _p('--saveEngine', '8.5', 937, 'if (getAndDelOption(arguments, "--saveEngine", engine))'),
    _p('--saveEngine', '8.6', 1063, 'if (getAndDelOption(arguments, "--saveEngine", engine))'),
    _p('--saveEngine', '10.3', 1353, 'if (getAndDelOption(arguments, "--saveEngine", engine))'),
    _p('--saveEngine', '10.16', 1441, 'if (getAndDelOption(arguments, "--saveEngine", engine))'),
    _p('--saveEngine', '11.1', 1279, 'if (getAndDelOption(arguments, "--saveEngine", engine))'),
    _p('--loadEngine', '8.5', 933, 'if (getAndDelOption(arguments, "--loadEngine", engine))'),
    _p('--loadEngine', '8.6', 1059, 'if (getAndDelOption(arguments, "--loadEngine", engine))'),
    _p('--loadEngine', '10.3', 1347, 'if (getAndDelOption(arguments, "--loadEngine", engine))'),
    _p('--loadEngine', '10.16', 1434, 'if (getAndDelOption(arguments, "--loadEngine", engine))'),
    _p('--loadEngine', '11.1', 1272, 'if (getAndDelOption(arguments, "--loadEngine", engine))'),
    _p('--minShapes', '8.5', 772, 'bool minShapes = getShapesBuild(arguments, shapes, "--minShapes", nvinfer1::OptProfileSelector::kMIN);'),
    _p('--minShapes', '8.6', 870, 'bool minShapes = getShapesBuild(arguments, shapes, "--minShapes", nvinfer1::OptProfileSelector::kMIN);'),
    _p('--minShapes', '10.3', 699, 'if (!minShapes && getAndDelOptionBehind(arguments, "--minShapes", pos, value))'),
    _p('--minShapes', '10.16', 741, 'if (!minShapes && getAndDelOptionBehind(arguments, "--minShapes", pos, value))'),
    _p('--minShapes', '11.1', 669, 'if (!minShapes && getAndDelOptionBehind(arguments, "--minShapes", pos, value))'),
    _p('--optShapes', '8.5', 773, 'bool optShapes = getShapesBuild(arguments, shapes, "--optShapes", nvinfer1::OptProfileSelector::kOPT);'),
    _p('--optShapes', '8.6', 871, 'bool optShapes = getShapesBuild(arguments, shapes, "--optShapes", nvinfer1::OptProfileSelector::kOPT);'),
    _p('--optShapes', '10.3', 709, 'else if (!optShapes && getAndDelOptionBehind(arguments, "--optShapes", pos, value))'),
    _p('--optShapes', '10.16', 751, 'else if (!optShapes && getAndDelOptionBehind(arguments, "--optShapes", pos, value))'),
    _p('--optShapes', '11.1', 679, 'else if (!optShapes && getAndDelOptionBehind(arguments, "--optShapes", pos, value))'),
    _p('--maxShapes', '8.5', 774, 'bool maxShapes = getShapesBuild(arguments, shapes, "--maxShapes", nvinfer1::OptProfileSelector::kMAX);'),
    _p('--maxShapes', '8.6', 872, 'bool maxShapes = getShapesBuild(arguments, shapes, "--maxShapes", nvinfer1::OptProfileSelector::kMAX);'),
    _p('--maxShapes', '10.3', 704, 'else if (!maxShapes && getAndDelOptionBehind(arguments, "--maxShapes", pos, value))'),
    _p('--maxShapes', '10.16', 746, 'else if (!maxShapes && getAndDelOptionBehind(arguments, "--maxShapes", pos, value))'),
    _p('--maxShapes', '11.1', 674, 'else if (!maxShapes && getAndDelOptionBehind(arguments, "--maxShapes", pos, value))'),
    _p('--profile', '10.3', 1070, 'if (!getOptimizationProfiles(arguments, optProfiles, "--profile"))'),
    _p('--profile', '10.16', 1121, 'if (!getOptimizationProfiles(arguments, optProfiles, "--profile"))'),
    _p('--profile', '11.1', 1093, 'if (!getOptimizationProfiles(arguments, optProfiles, "--profile"))'),
    _p('--shapes', '8.5', 1108, 'getShapesInference(arguments, shapes, "--shapes");'),
    _p('--shapes', '8.6', 1317, 'getShapesInference(arguments, shapes, "--shapes");'),
    _p('--shapes', '10.3', 1629, 'getShapesInference(arguments, shapes, "--shapes");'),
    _p('--shapes', '10.16', 1760, 'getShapesInference(arguments, shapes, "--shapes");'),
    _p('--shapes', '11.1', 1810, 'getShapesInference(arguments, shapes, "--shapes");'),
    _p('--stronglyTyped', '10.3', 1231, 'getAndDelOption(arguments, "--stronglyTyped", stronglyTyped);'),
    _p('--stronglyTyped', '10.16', 1282, 'getAndDelOption(arguments, "--stronglyTyped", stronglyTyped);'),
    _p('--stronglyTyped', '11.1', 1214, 'getAndDelOption(arguments, "--stronglyTyped", stronglyTyped);'),
    _p('--fp16', '8.5', 844, 'getAndDelOption(arguments, "--fp16", fp16);'),
    _p('--fp16', '8.6', 959, 'getAndDelOption(arguments, "--fp16", fp16);'),
    _p('--fp16', '10.3', 1226, 'getAndDelOption(arguments, "--fp16", fp16);'),
    _p('--fp16', '10.16', 1277, 'getAndDelOption(arguments, "--fp16", fp16);'),
    _p('--bf16', '10.3', 1227, 'getAndDelOption(arguments, "--bf16", bf16);'),
    _p('--bf16', '10.16', 1278, 'getAndDelOption(arguments, "--bf16", bf16);'),
    _p('--int8', '8.5', 845, 'getAndDelOption(arguments, "--int8", int8);'),
    _p('--int8', '8.6', 960, 'getAndDelOption(arguments, "--int8", int8);'),
    _p('--int8', '10.3', 1228, 'getAndDelOption(arguments, "--int8", int8);'),
    _p('--int8', '10.16', 1279, 'getAndDelOption(arguments, "--int8", int8);'),
    _p('--dynamicPlugins', '8.6', 1276, 'while (getAndDelOption(arguments, "--dynamicPlugins", pluginName))'),
    _p('--dynamicPlugins', '10.3', 1584, 'while (getAndDelOption(arguments, "--dynamicPlugins", pluginName))'),
    _p('--dynamicPlugins', '10.16', 1701, 'while (getAndDelOption(arguments, "--dynamicPlugins", pluginName))'),
    _p('--dynamicPlugins', '11.1', 1522, 'while (getAndDelOption(arguments, "--dynamicPlugins", pluginName))'),
    _p('--setPluginsToSerialize', '8.6', 1272, 'while (getAndDelOption(arguments, "--setPluginsToSerialize", pluginName))'),
    _p('--setPluginsToSerialize', '10.3', 1580, 'while (getAndDelOption(arguments, "--setPluginsToSerialize", pluginName))'),
    _p('--setPluginsToSerialize', '10.16', 1697, 'while (getAndDelOption(arguments, "--setPluginsToSerialize", pluginName))'),
    _p('--setPluginsToSerialize', '11.1', 1518, 'while (getAndDelOption(arguments, "--setPluginsToSerialize", pluginName))'),
    _p('--ignoreParsedPluginLibs', '8.6', 1280, 'getAndDelOption(arguments, "--ignoreParsedPluginLibs", ignoreParsedPluginLibs);'),
    _p('--ignoreParsedPluginLibs', '10.3', 1588, 'getAndDelOption(arguments, "--ignoreParsedPluginLibs", ignoreParsedPluginLibs);'),
    _p('--ignoreParsedPluginLibs', '10.16', 1712, 'getAndDelOption(arguments, "--ignoreParsedPluginLibs", ignoreParsedPluginLibs);'),
    _p('--ignoreParsedPluginLibs', '11.1', 1533, 'getAndDelOption(arguments, "--ignoreParsedPluginLibs", ignoreParsedPluginLibs);'),
    _p('--timingCacheFile', '8.5', 1018, 'getAndDelOption(arguments, "--timingCacheFile", timingCacheFile);'),
    _p('--timingCacheFile', '8.6', 1144, 'getAndDelOption(arguments, "--timingCacheFile", timingCacheFile);'),
    _p('--timingCacheFile', '10.3', 1434, 'getAndDelOption(arguments, "--timingCacheFile", timingCacheFile);'),
    _p('--timingCacheFile', '10.16', 1523, 'getAndDelOption(arguments, "--timingCacheFile", timingCacheFile);'),
    _p('--timingCacheFile', '11.1', 1353, 'getAndDelOption(arguments, "--timingCacheFile", timingCacheFile);'),
    _p('--builderOptimizationLevel', '8.6', 1163, 'getAndDelOption(arguments, "--builderOptimizationLevel", builderOptimizationLevel);'),
    _p('--builderOptimizationLevel', '10.3', 1448, 'getAndDelOption(arguments, "--builderOptimizationLevel", builderOptimizationLevel);'),
    _p('--builderOptimizationLevel', '10.16', 1537, 'getAndDelOption(arguments, "--builderOptimizationLevel", builderOptimizationLevel);'),
    _p('--builderOptimizationLevel', '11.1', 1367, 'getAndDelOption(arguments, "--builderOptimizationLevel", builderOptimizationLevel);'),
    _p('--memPoolSize', '8.5', 797, 'getAndDelOption(arguments, "--memPoolSize", memPoolSizes);'),
    _p('--memPoolSize', '8.6', 895, 'getAndDelOption(arguments, "--memPoolSize", memPoolSizes);'),
    _p('--memPoolSize', '10.3', 1124, 'getAndDelOption(arguments, "--memPoolSize", memPoolSizes);'),
    _p('--memPoolSize', '10.16', 1172, 'getAndDelOption(arguments, "--memPoolSize", memPoolSizes);'),
    _p('--memPoolSize', '11.1', 1124, 'getAndDelOption(arguments, "--memPoolSize", memPoolSizes);'),
    _p('--useDLACore', '8.5', 1071, 'getAndDelOption(arguments, "--useDLACore", DLACore);'),
    _p('--useDLACore', '8.6', 1261, 'getAndDelOption(arguments, "--useDLACore", DLACore);'),
    _p('--useDLACore', '10.3', 1568, 'getAndDelOption(arguments, "--useDLACore", DLACore);'),
    _p('--useDLACore', '10.16', 1690, 'getAndDelOption(arguments, "--useDLACore", DLACore);'),
    _p('--useDLACore', '11.1', 1511, 'getAndDelOption(arguments, "--useDLACore", DLACore);'),
    _p('--allowGPUFallback', '8.5', 1072, 'getAndDelOption(arguments, "--allowGPUFallback", fallback);'),
    _p('--allowGPUFallback', '8.6', 968, 'getAndDelOption(arguments, "--allowGPUFallback", allowGPUFallback);'),
    _p('--allowGPUFallback', '10.3', 1256, 'getAndDelOption(arguments, "--allowGPUFallback", allowGPUFallback);'),
    _p('--allowGPUFallback', '10.16', 1340, 'getAndDelOption(arguments, "--allowGPUFallback", allowGPUFallback);'),
    _p('--allowGPUFallback', '11.1', 1224, 'getAndDelOption(arguments, "--allowGPUFallback", allowGPUFallback);'),
    _p('--versionCompatible', '8.6', 946, 'getAndDelOption(arguments, "--versionCompatible", versionCompatible);'),
    _p('--versionCompatible', '10.3', 1211, 'getAndDelOption(arguments, "--versionCompatible", versionCompatible);'),
    _p('--versionCompatible', '10.16', 1259, 'getAndDelOption(arguments, "--versionCompatible", versionCompatible);'),
    _p('--versionCompatible', '11.1', 1196, 'getAndDelOption(arguments, "--versionCompatible", versionCompatible);'),
    _p('--excludeLeanRuntime', '8.6', 956, 'getAndDelOption(arguments, "--excludeLeanRuntime", excludeLeanRuntime);'),
    _p('--excludeLeanRuntime', '10.3', 1223, 'getAndDelOption(arguments, "--excludeLeanRuntime", excludeLeanRuntime);'),
    _p('--excludeLeanRuntime', '10.16', 1273, 'getAndDelOption(arguments, "--excludeLeanRuntime", excludeLeanRuntime);'),
    _p('--excludeLeanRuntime', '11.1', 1210, 'getAndDelOption(arguments, "--excludeLeanRuntime", excludeLeanRuntime);'),
    _p('--leanDLLPath', '8.6', 1255, 'getAndDelOption(arguments, "--leanDLLPath", leanDLLPath);'),
    _p('--leanDLLPath', '10.3', 1559, 'getAndDelOption(arguments, "--leanDLLPath", leanDLLPath);'),
    _p('--leanDLLPath', '10.16', 1661, 'getAndDelOption(arguments, "--leanDLLPath", leanDLLPath);'),
    _p('--leanDLLPath', '11.1', 1481, 'getAndDelOption(arguments, "--leanDLLPath", leanDLLPath);'),
    _p('--hardwareCompatibilityLevel', '8.6', 1166, 'getAndDelOption(arguments, "--hardwareCompatibilityLevel", hardwareCompatibleArgs);'),
    _p('--hardwareCompatibilityLevel', '10.3', 1467, 'getAndDelOption(arguments, "--hardwareCompatibilityLevel", hardwareCompatibleArgs);'),
    _p('--hardwareCompatibilityLevel', '10.16', 1558, 'getAndDelOption(arguments, "--hardwareCompatibilityLevel", hardwareCompatibleArgs);'),
    _p('--hardwareCompatibilityLevel', '11.1', 1388, 'getAndDelOption(arguments, "--hardwareCompatibilityLevel", hardwareCompatibleArgs);'),
    _p('--skipInference', '8.6', 975, 'getAndDelOption(arguments, "--skipInference", skipInference);'),
    _p('--skipInference', '10.3', 1259, 'getAndDelOption(arguments, "--skipInference", skipInference);'),
    _p('--skipInference', '10.16', 1343, 'getAndDelOption(arguments, "--skipInference", skipInference);'),
    _p('--skipInference', '11.1', 1226, 'getAndDelOption(arguments, "--skipInference", skipInference);'),
    _p('--buildOnly', '8.5', 849, 'getAndDelOption(arguments, "--buildOnly", buildOnly);'),
    _p('--buildOnly', '8.6', 971, 'if (getAndDelOption(arguments, "--buildOnly", skipInference))'),
    _p('--staticPlugins', '8.6', 1268, 'while (getAndDelOption(arguments, "--staticPlugins", pluginName))'),
    _p('--staticPlugins', '10.3', 1576, 'while (getAndDelOption(arguments, "--staticPlugins", pluginName))'),
    _p('--staticPlugins', '10.16', 1716, 'while (getAndDelOption(arguments, "--staticPlugins", staticPluginName))'),
    _p('--staticPlugins', '11.1', 1537, 'while (getAndDelOption(arguments, "--staticPlugins", staticPluginName))'),
)

# What the plugin and compatibility flags do once parsed.
BEHAVIOUR: tuple[FlagSource, ...] = (
    FlagSource("--staticPlugins", "10.3", TRTEXEC_FILE, 303, "pluginLibs.emplace_back(loadLibrary(pluginPath));"),
    FlagSource("--staticPlugins", "10.16", TRTEXEC_FILE, 321, "pluginLibs.emplace_back(loadLibrary(pluginPath));"),
    FlagSource("--staticPlugins", "11.1", TRTEXEC_FILE, 470, "pluginLibs.emplace_back(loadLibrary(pluginPath));"),
    FlagSource("--dynamicPlugins", "10.3", ENGINES_FILE, 1251,
               "env.builder->getPluginRegistry().loadLibrary(pluginPath.c_str());"),
    FlagSource("--dynamicPlugins", "10.3", ENGINES_FILE, 125,
               "mRuntime->getPluginRegistry().loadLibrary(pluginPath.c_str());"),
    FlagSource("--dynamicPlugins", "10.16", ENGINES_FILE, 1441,
               "env.builder->getPluginRegistry().loadLibrary(pluginPath.c_str());"),
    FlagSource("--dynamicPlugins", "10.16", ENGINES_FILE, 157,
               "mRuntime->getPluginRegistry().loadLibrary(pluginPath.c_str());"),
    FlagSource("--dynamicPlugins", "11.1", ENGINES_FILE, 913,
               "env.builder->getPluginRegistry().loadLibrary(pluginPath.c_str());"),
    FlagSource("--dynamicPlugins", "11.1", ENGINES_FILE, 134,
               "mRuntime->getPluginRegistry().loadLibrary(pluginPath.c_str());"),
    FlagSource("--setPluginsToSerialize", "10.3", ENGINES_FILE, 924,
               "config.setPluginsToSerialize(pluginPaths.data(), pluginPaths.size());"),
    FlagSource("--setPluginsToSerialize", "10.16", ENGINES_FILE, 1024,
               "config.setPluginsToSerialize(pluginPaths.data(), pluginPaths.size());"),
    FlagSource("--setPluginsToSerialize", "11.1", ENGINES_FILE, 646,
               "config.setPluginsToSerialize(pluginPaths.data(), pluginPaths.size());"),
    FlagSource("--setPluginsToSerialize", "10.16", TRTEXEC_FILE, 489,
               "dynamicPluginsNotSerialized.emplace_back(pluginName);"),
    FlagSource("--setPluginsToSerialize", "11.1", TRTEXEC_FILE, 648,
               "dynamicPluginsNotSerialized.emplace_back(pluginName);"),
    FlagSource("--ignoreParsedPluginLibs", "10.3", ENGINES_FILE, 1263,
               "if (build.versionCompatible && !sys.ignoreParsedPluginLibs && !vcPluginLibrariesUsed.empty())"),
    FlagSource("--ignoreParsedPluginLibs", "10.16", ENGINES_FILE, 1451,
               "if (build.versionCompatible && !sys.ignoreParsedPluginLibs && !vcPluginLibrariesUsed.empty())"),
    FlagSource("--ignoreParsedPluginLibs", "11.1", ENGINES_FILE, 923,
               "if (build.versionCompatible && !sys.ignoreParsedPluginLibs && !vcPluginLibrariesUsed.empty())"),
    # --profile=N: the loop over N's shape flags, and the "right behind" test that pairs them by position
    FlagSource("--profile", "10.3", OPTIONS_FILE, 691,
               "while (getAndDelOptionWithPosition(arguments, argument, profileIndex, pos))"),
    FlagSource("--profile", "10.3", OPTIONS_FILE, 404, "if (i->second.second - pos == 1)"),
    FlagSource("--profile", "10.16", OPTIONS_FILE, 733,
               "while (getAndDelOptionWithPosition(arguments, argument, profileIndex, pos))"),
    FlagSource("--profile", "10.16", OPTIONS_FILE, 429, "if (i->second.second - pos == 1)"),
    FlagSource("--profile", "11.1", OPTIONS_FILE, 661,
               "while (getAndDelOptionWithPosition(arguments, argument, profileIndex, pos))"),
    FlagSource("--profile", "11.1", OPTIONS_FILE, 407, "if (i->second.second - pos == 1)"),
    FlagSource("--versionCompatible", "10.3", ENGINES_FILE, 106, "mRuntime->setEngineHostCodeAllowed(true);"),
    FlagSource("--versionCompatible", "10.16", ENGINES_FILE, 140, "mRuntime->setEngineHostCodeAllowed(true);"),
    FlagSource("--versionCompatible", "11.1", ENGINES_FILE, 117, "mRuntime->setEngineHostCodeAllowed(true);"),
    FlagSource("--leanDLLPath", "10.3", ENGINES_FILE, 99,
               "mRuntime.reset(mParentRuntime->loadRuntime(mLeanDLLPath.c_str()));"),
    FlagSource("--leanDLLPath", "10.16", ENGINES_FILE, 134,
               "mRuntime.reset(mParentRuntime->loadRuntime(mLeanDLLPath.c_str()));"),
    FlagSource("--leanDLLPath", "11.1", ENGINES_FILE, 111,
               "mRuntime.reset(mParentRuntime->loadRuntime(mLeanDLLPath.c_str()));"),
)

# The branch whose parser speaks for each TensorRT major.minor deployconv writes lines for: the newest read branch
# of the same major at or below it, else the oldest of that major (10.1 -> 10.3), else the newest older one.
RELEASES = tuple(sorted(COMMITS, key=lambda r: tuple(int(p) for p in r.split("."))))


def _key(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split("."))


def release_for(major: int, minor: int) -> str:
    """The read release branch standing for TensorRT major.minor."""
    same = [r for r in RELEASES if _key(r)[0] == major]
    below = [r for r in same if _key(r) <= (major, minor)]
    if below:
        return below[-1]
    if same:
        return same[0]
    older = [r for r in RELEASES if _key(r) <= (major, minor)]
    return (older or list(RELEASES))[-1]


def parsed_flags(release: str) -> frozenset[str]:
    """The flags trtexec's parser on `release` reads (of those deployconv uses)."""
    return frozenset(s.flag for s in PARSED if s.release == release)


def several_profiles(release: str) -> bool:
    """Whether trtexec on `release` builds several optimization profiles (it parses --profile)."""
    return "--profile" in parsed_flags(release)
