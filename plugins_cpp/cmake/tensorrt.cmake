# Find TensorRT's headers (only headers: the plugin library calls nothing in libnvinfer, so it links without it and
# loads into whichever TensorRT 10/11 runtime loads it). Sets DEPLOYCONV_TRT_INCLUDE_DIR and DEPLOYCONV_TRT_VERSION,
# or leaves DEPLOYCONV_TRT_INCLUDE_DIR empty with DEPLOYCONV_TRT_MISSING saying why.

set(DEPLOYCONV_TRT_INCLUDE_DIR "")
set(DEPLOYCONV_TRT_VERSION "")
set(DEPLOYCONV_TRT_MISSING "")

find_path(DEPLOYCONV_TRT_HEADER_DIR NvInfer.h
          HINTS "${TENSORRT_ROOT}" ENV TENSORRT_ROOT
          PATH_SUFFIXES include include/x86_64-linux-gnu include/aarch64-linux-gnu)

if(NOT DEPLOYCONV_TRT_HEADER_DIR)
  set(DEPLOYCONV_TRT_MISSING "NvInfer.h not found (set -DTENSORRT_ROOT=<dir with include/NvInfer.h> or the TENSORRT_ROOT environment variable)")
elseif(NOT EXISTS "${DEPLOYCONV_TRT_HEADER_DIR}/NvInferVersion.h")
  set(DEPLOYCONV_TRT_MISSING "${DEPLOYCONV_TRT_HEADER_DIR} has NvInfer.h but no NvInferVersion.h")
else()
  file(READ "${DEPLOYCONV_TRT_HEADER_DIR}/NvInferVersion.h" _version_h)
  set(_parts "")
  foreach(part MAJOR MINOR PATCH)
    # TensorRT 10.0-10.12 define NV_TENSORRT_<PART> as a number; later releases via TRT_<PART>_ENTERPRISE.
    if(_version_h MATCHES "#define TRT_${part}_ENTERPRISE ([0-9]+)")
      list(APPEND _parts "${CMAKE_MATCH_1}")
    elseif(_version_h MATCHES "#define NV_TENSORRT_${part} ([0-9]+)")
      list(APPEND _parts "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  list(JOIN _parts "." DEPLOYCONV_TRT_VERSION)
  list(GET _parts 0 _major)
  if(_major LESS 10)
    set(DEPLOYCONV_TRT_MISSING "TensorRT ${DEPLOYCONV_TRT_VERSION} at ${DEPLOYCONV_TRT_HEADER_DIR} is too old: the plugins are IPluginV3, TensorRT 10.0 or newer")
  else()
    set(DEPLOYCONV_TRT_INCLUDE_DIR "${DEPLOYCONV_TRT_HEADER_DIR}")
  endif()
endif()
