# Settle the CUDA archs before project() enables CUDA (CMake compiles a probe for them when it does).
#
#   -DDEPLOYCONV_CUDA_ARCHS="87;90"   build exactly these; an arch this nvcc cannot compile for is an error
#   (not given)                       default_archs.cmake (rendered from deployconv/plugins/archs.py), keeping
#                                     only what this nvcc supports, as deployconv.plugins.archs does
#
# Every arch gets SASS; the highest also gets PTX, so a newer GPU can still JIT the kernels.

cmake_policy(SET CMP0057 NEW)  # if(... IN_LIST ...), also when included from a `cmake -P` script
set(_DEPLOYCONV_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")  # inside a function CMAKE_CURRENT_LIST_DIR is the caller's

function(deployconv_nvcc_archs nvcc out_var)
  execute_process(COMMAND "${nvcc}" --list-gpu-code OUTPUT_VARIABLE listing ERROR_QUIET RESULT_VARIABLE rc)
  set(archs "")
  if(rc EQUAL 0)
    string(REGEX MATCHALL "sm_[0-9]+[a-z]?" codes "${listing}")
    foreach(code IN LISTS codes)
      string(REPLACE "sm_" "" arch "${code}")
      list(APPEND archs "${arch}")
    endforeach()
  endif()
  set(${out_var} "${archs}" PARENT_SCOPE)
endfunction()

function(deployconv_resolve_cuda_archs)
  set(nvcc "${CMAKE_CUDA_COMPILER}")
  if(NOT nvcc AND DEFINED ENV{CUDACXX})
    set(nvcc "$ENV{CUDACXX}")
  endif()
  if(NOT nvcc)
    find_program(DEPLOYCONV_NVCC NAMES nvcc HINTS "${CUDAToolkit_ROOT}" ENV CUDA_HOME ENV CUDA_PATH
                 PATHS /usr/local/cuda PATH_SUFFIXES bin)
    set(nvcc "${DEPLOYCONV_NVCC}")
  endif()
  if(NOT nvcc)
    message(FATAL_ERROR "nvcc not found: install the CUDA toolkit or pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc")
  endif()
  deployconv_nvcc_archs("${nvcc}" supported)

  if(DEFINED DEPLOYCONV_CUDA_ARCHS AND NOT DEPLOYCONV_CUDA_ARCHS STREQUAL "")
    set(wanted "${DEPLOYCONV_CUDA_ARCHS}")
    set(explicit TRUE)
  else()
    include("${_DEPLOYCONV_CMAKE_DIR}/default_archs.cmake")
    set(wanted "${DEPLOYCONV_DEFAULT_CUDA_ARCHS}")
    set(explicit FALSE)
  endif()
  string(REPLACE "," ";" wanted "${wanted}")

  set(kept "")
  set(dropped "")
  foreach(arch IN LISTS wanted)
    string(REGEX REPLACE "^(sm_|compute_)" "" arch "${arch}")
    if(NOT supported OR arch IN_LIST supported)
      list(APPEND kept "${arch}")
    else()
      list(APPEND dropped "${arch}")
    endif()
  endforeach()
  if(NOT supported)
    message(WARNING "could not read `${nvcc} --list-gpu-code`; building ${kept} unchecked")
  endif()
  if(dropped AND explicit)
    message(FATAL_ERROR "DEPLOYCONV_CUDA_ARCHS asks for ${dropped}, which ${nvcc} cannot compile for "
                        "(it supports ${supported}): drop them or use a CUDA toolkit that has them")
  elseif(dropped)
    message(STATUS "deployconv: default archs ${dropped} skipped: not supported by this nvcc")
  endif()
  if(NOT kept)
    message(FATAL_ERROR "no CUDA arch left to build (asked: ${wanted}; nvcc supports: ${supported})")
  endif()

  list(SORT kept COMPARE NATURAL)
  list(REMOVE_DUPLICATES kept)
  list(GET kept -1 highest)
  set(cmake_archs "")
  foreach(arch IN LISTS kept)
    if(arch STREQUAL highest)
      list(APPEND cmake_archs "${arch}")  # SASS + PTX
    else()
      list(APPEND cmake_archs "${arch}-real")  # SASS only
    endif()
  endforeach()
  set(DEPLOYCONV_RESOLVED_CUDA_ARCHS "${kept}" PARENT_SCOPE)
  set(CMAKE_CUDA_ARCHITECTURES "${cmake_archs}" PARENT_SCOPE)
endfunction()
