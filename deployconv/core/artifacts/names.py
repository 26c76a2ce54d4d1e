"""The names of what an export (or bundle) directory holds: one place, so a reader and a writer cannot disagree
about a file name. Plain constants; relative POSIX paths inside the directory unless said otherwise."""

from __future__ import annotations

MODEL_ONNX = "model.onnx"  # the artifact: the graph for the target (plugin nodes where the target uses them)
ORT_DIR = "ort"
ORT_MODEL = f"{ORT_DIR}/{MODEL_ONNX}"  # the ONNX Runtime twin of a plugin graph (ONNX-domain lowerings)
MANIFEST = "manifest.json"  # what was exported, how, and the sha256 of every other file
SIGNATURE = f"{MANIFEST}.sig"  # `deployconv sign`: a signature of manifest.json
REPORT = "report.json"  # the export's full report (parity, latency, graph checks, ...)
REFERENCE = "reference.npz"  # inputs and expected outputs for on-device parity
ENGINE = "engine.plan"  # the TensorRT engine (built on the device, or by export where TensorRT is installed)
ENGINE_LAYERS = "engine.layers.json"  # the engine inspector's layer report, written by the same build
DLA_FILE = "dla.json"  # a bundle's DLA placement prediction

# A bundle's source trees and what the device builds from them.
PLUGINS_DIR = "plugins"
PLUGIN_BUILD_DIR = f"{PLUGINS_DIR}/build"
PLUGIN_LIBRARY_NAME = "libdeployconv_plugins.so"
PLUGIN_LIBRARY = f"{PLUGIN_BUILD_DIR}/{PLUGIN_LIBRARY_NAME}"  # where a bundle's device build puts the library
PYTHON_DIR = "deployconv_src"

PIN_SUFFIX = ".manifest.sha256"  # OUT.manifest.sha256: the pin, beside the folder OUT (not inside it)

# The files every export and bundle holds.
EXPORT_REQUIRED = (MODEL_ONNX, REFERENCE, REPORT)
