// SKA (LSNet): per-pixel dynamic 3x3 depthwise aggregation, NCHW, with the optional LSConv epilogue.
//
//   y[b,c,h,w] = sum_{i,j<3} x[b,c,h-1+i,w-1+j] * wt[b, c % G, 3i+j, h, w]          (zero padded)
//   y          = scale[c] * y + shift[c] + residual[b,c,h,w]                          (each part optional)
//
// Memory-bound (~18 FLOPs per ~6 bytes in fp16), so the design minimises DRAM traffic and load instructions:
// one thread owns VEC adjacent pixels of one row of one weight group g, loads their 9 weight taps ONCE into
// registers, then walks the R = C/G channels that share the group (c = g, g+G, g+2G, ...: interleaved, see
// deployconv/ops/ska.py), reading three x row segments of VEC+2 values per channel (neighbour re-reads by the
// adjacent threads hit L1) and writing VEC outputs. Compulsory traffic: x, wt, residual read once, y written once.
// Vector (up to 16-byte) accesses are used when W is a multiple of VEC and every pointer is aligned; otherwise
// the same code runs with scalar, bounds-checked accesses.
#include "common.cuh"

namespace {

using dc_kernels::from_float;
using dc_kernels::load_float;
using dc_kernels::store_float;
using dc_kernels::to_float;

constexpr int kTaps = 9;
constexpr int kThreads = 128;
constexpr int kUnalignedVec = 4;

struct SkaShape {
    int n, c, h, w, g, r;  // r = c / g channels share one weight group
    int chunks;            // VEC-wide chunks per row: ceil(w / VEC)
};

// row[j] = x_row[w0 - 1 + j] for j in [0, VEC+2), zero outside [0, W).
template <typename T, int VEC, bool ALIGNED>
__device__ __forceinline__ void load_row(const T* __restrict__ x_row, int w0, int width, float (&row)[VEC + 2]) {
    if (ALIGNED) {  // W % VEC == 0: the chunk is whole and its middle is one aligned vector
        float mid[VEC];
        load_float<T, VEC>(x_row + w0, mid);
#pragma unroll
        for (int v = 0; v < VEC; ++v) row[v + 1] = mid[v];
        row[0] = w0 > 0 ? to_float(x_row[w0 - 1]) : 0.f;
        row[VEC + 1] = w0 + VEC < width ? to_float(x_row[w0 + VEC]) : 0.f;
    } else {
#pragma unroll
        for (int j = 0; j < VEC + 2; ++j) {
            const int col = w0 - 1 + j;
            row[j] = (col >= 0 && col < width) ? to_float(x_row[col]) : 0.f;
        }
    }
}

// out[v] = p[v] for the chunk's valid pixels (v < valid), 0 for the rest.
template <typename T, int VEC, bool ALIGNED>
__device__ __forceinline__ void load_chunk(const T* __restrict__ p, int valid, float (&out)[VEC]) {
    if (ALIGNED) {
        load_float<T, VEC>(p, out);
    } else {
#pragma unroll
        for (int v = 0; v < VEC; ++v) out[v] = v < valid ? to_float(p[v]) : 0.f;
    }
}

template <typename T, int VEC, bool ALIGNED>
__global__ void __launch_bounds__(kThreads)
    ska_kernel(SkaShape s, const T* __restrict__ x, const T* __restrict__ wt, const float* __restrict__ scale,
               const float* __restrict__ shift, const T* __restrict__ residual, T* __restrict__ y) {
    const long long t = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    const long long total = static_cast<long long>(s.n) * s.g * s.h * s.chunks;
    if (t >= total) return;
    // Thread order: chunk fastest, then row, then group, then batch (adjacent threads: adjacent pixels).
    const int chunk = static_cast<int>(t % s.chunks);
    long long rest = t / s.chunks;
    const int h = static_cast<int>(rest % s.h);
    rest /= s.h;
    const int g = static_cast<int>(rest % s.g);
    const int b = static_cast<int>(rest / s.g);
    const int w0 = chunk * VEC;
    const int valid = min(VEC, s.w - w0);
    const long long hw = static_cast<long long>(s.h) * s.w;
    const long long pix = static_cast<long long>(h) * s.w + w0;

    // The 9 taps of this group's weights for the chunk's pixels, read once for all R sharing channels.
    float wk[kTaps][VEC];
    const T* wbase = wt + (static_cast<long long>(b) * s.g + g) * kTaps * hw + pix;
#pragma unroll
    for (int tap = 0; tap < kTaps; ++tap) load_chunk<T, VEC, ALIGNED>(wbase + tap * hw, valid, wk[tap]);

#pragma unroll 2
    for (int r = 0; r < s.r; ++r) {
        const int c = r * s.g + g;
        const long long plane = (static_cast<long long>(b) * s.c + c) * hw;
        const T* xp = x + plane;
        float acc[VEC];
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[v] = 0.f;
#pragma unroll
        for (int i = 0; i < 3; ++i) {
            const int hh = h - 1 + i;
            if (hh < 0 || hh >= s.h) continue;  // zero padding: the row contributes nothing
            float row[VEC + 2];
            load_row<T, VEC, ALIGNED>(xp + static_cast<long long>(hh) * s.w, w0, s.w, row);
#pragma unroll
            for (int j = 0; j < 3; ++j) {
#pragma unroll
                for (int v = 0; v < VEC; ++v) acc[v] = fmaf(row[v + j], wk[3 * i + j][v], acc[v]);
            }
        }
        // Epilogue in fp32, one rounding to T: scale * y + shift + residual.
        const float sc = scale != nullptr ? scale[c] : 1.f;
        const float sh = shift != nullptr ? shift[c] : 0.f;
        float res[VEC];
        if (residual != nullptr) {
            load_chunk<T, VEC, ALIGNED>(residual + plane + pix, valid, res);
        } else {
#pragma unroll
            for (int v = 0; v < VEC; ++v) res[v] = 0.f;
        }
#pragma unroll
        for (int v = 0; v < VEC; ++v) acc[v] = fmaf(acc[v], sc, sh) + res[v];
        T* yp = y + plane + pix;
        if (ALIGNED) {
            store_float<T, VEC>(yp, acc);
        } else {
#pragma unroll
            for (int v = 0; v < VEC; ++v) {
                if (v < valid) yp[v] = from_float<T>(acc[v]);
            }
        }
    }
}

template <typename T, int VEC, bool ALIGNED>
cudaError_t launch(const dc_ska_params& p, const T* x, const T* wt, const float* scale, const float* shift,
                   const T* residual, T* y, cudaStream_t stream) {
    const SkaShape s{p.n, p.c, p.h, p.w, p.groups, p.c / p.groups, static_cast<int>(dc_kernels::ceil_div(p.w, VEC))};
    const long long threads = static_cast<long long>(s.n) * s.g * s.h * s.chunks;
    const long long blocks = dc_kernels::ceil_div(threads, kThreads);
    if (blocks > dc_kernels::kMaxGridX) return cudaErrorInvalidValue;
    ska_kernel<T, VEC, ALIGNED><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(s, x, wt, scale, shift,
                                                                                      residual, y);
    return dc_kernels::launch_status();
}

// Widest VEC (at most 16 bytes) that divides W and fits every pointer's alignment, or 0 for the scalar path.
template <typename T>
int aligned_vec(const dc_ska_params& p, const void* x, const void* wt, const void* residual, const void* y) {
    for (int vec = 16 / static_cast<int>(sizeof(T)); vec >= 2; vec /= 2) {
        const int eb = static_cast<int>(sizeof(T));
        if (p.w % vec == 0 && dc_kernels::vector_fits(x, vec, eb) && dc_kernels::vector_fits(wt, vec, eb) &&
            dc_kernels::vector_fits(residual, vec, eb) && dc_kernels::vector_fits(y, vec, eb))
            return vec;
    }
    return 0;
}

template <typename T>
cudaError_t ska_typed(const dc_ska_params& p, const void* x, const void* wt, const float* scale,
                      const float* shift, const void* residual, void* y, cudaStream_t stream) {
    const T* xt = static_cast<const T*>(x);
    const T* wtt = static_cast<const T*>(wt);
    const T* rt = static_cast<const T*>(residual);
    T* yt = static_cast<T*>(y);
    const int vec = aligned_vec<T>(p, x, wt, residual, y);
    if constexpr (sizeof(T) == 2) {  // 8 halves = 16 bytes; 8 floats would be two accesses: never chosen
        if (vec == 8) return launch<T, 8, true>(p, xt, wtt, scale, shift, rt, yt, stream);
    }
    if (vec == 4) return launch<T, 4, true>(p, xt, wtt, scale, shift, rt, yt, stream);
    if (vec == 2) return launch<T, 2, true>(p, xt, wtt, scale, shift, rt, yt, stream);
    return launch<T, kUnalignedVec, false>(p, xt, wtt, scale, shift, rt, yt, stream);
}

}  // namespace

extern "C" cudaError_t dc_ska_forward(dc_dtype dtype, const dc_ska_params* p, const void* x, const void* wt,
                                      const float* scale, const float* shift, const void* residual, void* y,
                                      cudaStream_t stream) {
    if (p == nullptr || x == nullptr || wt == nullptr || y == nullptr) return cudaErrorInvalidValue;
    if (p->n < 0 || p->c < 1 || p->h < 1 || p->w < 1 || p->groups < 1 || p->c % p->groups != 0)
        return cudaErrorInvalidValue;
    if (p->n == 0) return cudaSuccess;
    return dc_kernels::dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        return ska_typed<T>(*p, x, wt, scale, shift, residual, y, stream);
    });
}
