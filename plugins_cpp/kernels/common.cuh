// Shared helpers of the deployconv kernels: dtype conversion, aligned vector access, dtype dispatch.
// Every kernel stores its data in T (float, __half, __nv_bfloat16) and computes in fp32: values are widened
// with to_float on load and narrowed once, round-to-nearest, on store.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "deployconv_kernels.h"

namespace dc_kernels {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// N elements of T moved as one access (up to 16 bytes, the widest load; a 32-byte Vec is two 16-byte accesses).
// Callers guarantee the address is a multiple of the alignment (checked on the host by vector_fits).
__host__ __device__ constexpr int vec_align(int bytes) { return bytes < 16 ? bytes : 16; }
template <typename T, int N>
struct alignas(vec_align(static_cast<int>(sizeof(T)) * N)) Vec {
    T v[N];
};

template <typename T, int N>
__device__ __forceinline__ void load_float(const T* p, float (&out)[N]) {
    const Vec<T, N> raw = *reinterpret_cast<const Vec<T, N>*>(p);
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = to_float(raw.v[i]);
}

template <typename T, int N>
__device__ __forceinline__ void store_float(T* p, const float (&in)[N]) {
    Vec<T, N> raw;
#pragma unroll
    for (int i = 0; i < N; ++i) raw.v[i] = from_float<T>(in[i]);
    *reinterpret_cast<Vec<T, N>*>(p) = raw;
}

// Host: may a Vec of `elems` elements of `elem_bytes` be used at `p` (NULL counts as aligned: not read)?
inline bool vector_fits(const void* p, int elems, int elem_bytes) {
    const uintptr_t a = static_cast<uintptr_t>(vec_align(elems * elem_bytes));
    return p == nullptr || reinterpret_cast<uintptr_t>(p) % a == 0;
}

inline long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

// Calls fn(T{}) with T the storage type of `dtype`; unknown dtypes are cudaErrorInvalidValue.
template <typename Fn>
cudaError_t dispatch_dtype(dc_dtype dtype, Fn&& fn) {
    switch (dtype) {
        case DC_FLOAT32: return fn(float{});
        case DC_FLOAT16: return fn(__half{});
        case DC_BFLOAT16: return fn(__nv_bfloat16{});
    }
    return cudaErrorInvalidValue;
}

// The status of the launch just made (launch errors are not sticky: this also clears them).
inline cudaError_t launch_status() { return cudaGetLastError(); }

// Grid sizes are limited to 2^31-1 blocks in x and 65535 in y/z.
constexpr long long kMaxGridX = 2147483647LL;
constexpr long long kMaxGridYZ = 65535LL;

}  // namespace dc_kernels
