// DCNv4 core op (OpenGVLab semantics, see deployconv/ops/dcnv4.py), NHWC.
//
// value (N, H, W, G*D), offset_mask (N, Ho, Wo, P), P = ceil(G*K*3/8)*8; per (pixel, group) a block of 3K values
// at g*3K: K (dx, dy) pairs, then K unnormalised weights m. Points are x-major (i over the kernel's width, j
// over its height; the centre dropped with remove_center). For output pixel (oy, ox):
//     cw = (dw*(kw-1)) >> 1,  w = (ox*sw - pw + cw) - cw*s + (i*dw + dx)*s      (h likewise, s = offset_scale)
//     y[n, oy, ox, g*D + d] = sum_k m_k * bilinear(value[n, :, :, g*D + d], h, w)   (corners outside read 0)
//
// One thread handles VEC adjacent channels of one (pixel, group): it reads the group's K offsets and weights
// (the same addresses for the D/VEC threads of the group: one broadcast transaction), keeps the current point's
// coordinates and weights in registers, and reads each corner as VEC-channel vectors (NHWC: the channels of a
// position are contiguous, so adjacent threads read adjacent vectors). Coordinates and accumulation in fp32.
// The launch parameters (VEC, block size) come from the pure function `dcnv4_launch_config`.
#include "common.cuh"

namespace {

using dc_kernels::from_float;
using dc_kernels::load_float;
using dc_kernels::store_float;
using dc_kernels::to_float;

struct Dcnv4Shape {
    int n, h, w, g, d, c;  // c = g * d
    int kh, kw, sh, sw, ph, pw, dh, dw;
    int ho, wo, k, p;      // k sampling points, p = offset_mask's last dimension
    int remove_center;
    int vecs_per_group;    // d / VEC
    float offset_scale;
};

struct Dcnv4Launch {
    int vec;          // channels per thread
    int threads;      // per block
    long long blocks;
};

// Pure: the launch for `shape` given the element size, whether the value/output pointers allow VEC-wide
// accesses (aligned_elems: the largest power of two dividing both addresses, in elements) and the SM count.
// VEC: the widest of 8/4/2/1 channels that divides D, is aligned, and keeps one access <= 16 bytes (fp32: 4).
// Block: 256 threads, lowered to 128/64 while that leaves fewer than 2 blocks per SM (small maps).
Dcnv4Launch dcnv4_launch_config(const Dcnv4Shape& s, int elem_bytes, int aligned_elems, int sm_count) {
    Dcnv4Launch l{1, 256, 0};
    for (int v = 8; v >= 2; v /= 2) {
        if (v * elem_bytes <= 16 && s.d % v == 0 && aligned_elems % v == 0) {
            l.vec = v;
            break;
        }
    }
    const long long threads = static_cast<long long>(s.n) * s.ho * s.wo * s.g * (s.d / l.vec);
    while (l.threads > 64 && dc_kernels::ceil_div(threads, l.threads) < 2LL * sm_count) l.threads /= 2;
    l.blocks = dc_kernels::ceil_div(threads, l.threads);
    return l;
}

template <typename T, int VEC>
__global__ void __launch_bounds__(256)
    dcnv4_kernel(Dcnv4Shape s, const T* __restrict__ value, const T* __restrict__ offset_mask, T* __restrict__ y) {
    const long long t = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    const long long total = static_cast<long long>(s.n) * s.ho * s.wo * s.g * s.vecs_per_group;
    if (t >= total) return;
    // Thread order: channel vector fastest, then group, then output pixel (n, oy, ox).
    const int v = static_cast<int>(t % s.vecs_per_group);
    long long rest = t / s.vecs_per_group;
    const int g = static_cast<int>(rest % s.g);
    const long long pixel = rest / s.g;  // (n * Ho + oy) * Wo + ox
    const int ox = static_cast<int>(pixel % s.wo);
    rest = pixel / s.wo;
    const int oy = static_cast<int>(rest % s.ho);
    const int n = static_cast<int>(rest / s.ho);

    const T* om = offset_mask + pixel * s.p + static_cast<long long>(g) * 3 * s.k;
    const T* vb = value + static_cast<long long>(n) * s.h * s.w * s.c + g * s.d + v * VEC;
    const int cw = (s.dw * (s.kw - 1)) >> 1;
    const int chh = (s.dh * (s.kh - 1)) >> 1;
    // The official kernel's order: p0 = o*stride - pad + centre, p0_ = p0 - centre*scale, then
    // p0_ + (i*dil + offset)*scale. Written with _rn intrinsics so the compiler cannot fuse a multiply and an add:
    // every step rounds exactly as the fp32 PyTorch reference's does.
    const float sc = s.offset_scale;
    const float p0w = __fsub_rn(static_cast<float>(ox * s.sw - s.pw + cw), __fmul_rn(static_cast<float>(cw), sc));
    const float p0h = __fsub_rn(static_cast<float>(oy * s.sh - s.ph + chh), __fmul_rn(static_cast<float>(chh), sc));
    const float fh = static_cast<float>(s.h);
    const float fw = static_cast<float>(s.w);

    float acc[VEC];
#pragma unroll
    for (int e = 0; e < VEC; ++e) acc[e] = 0.f;

    int pt = 0;  // packed point index
    for (int i = 0; i < s.kw; ++i) {
        for (int j = 0; j < s.kh; ++j) {
            if (s.remove_center && i == s.kw / 2 && j == s.kh / 2) continue;
            const float dx = to_float(om[2 * pt]);
            const float dy = to_float(om[2 * pt + 1]);
            const float m = to_float(om[2 * s.k + pt]);
            ++pt;
            const float wi = __fadd_rn(p0w, __fmul_rn(__fadd_rn(static_cast<float>(i * s.dw), dx), sc));
            const float hi = __fadd_rn(p0h, __fmul_rn(__fadd_rn(static_cast<float>(j * s.dh), dy), sc));
            if (!(hi > -1.f && wi > -1.f && hi < fh && wi < fw)) continue;  // fully outside (or NaN): 0
            const float fy = floorf(hi);
            const float fx = floorf(wi);
            const float ly = hi - fy;
            const float lx = wi - fx;
            const int y0 = static_cast<int>(fy);
            const int x0 = static_cast<int>(fx);
            const float wy[2] = {(1.f - ly) * m, ly * m};
            const float wx[2] = {1.f - lx, lx};
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const int yi = y0 + (q >> 1);
                const int xi = x0 + (q & 1);
                if (yi < 0 || yi >= s.h || xi < 0 || xi >= s.w) continue;
                const float cwt = wy[q >> 1] * wx[q & 1];
                float val[VEC];
                load_float<T, VEC>(vb + (static_cast<long long>(yi) * s.w + xi) * s.c, val);
#pragma unroll
                for (int e = 0; e < VEC; ++e) acc[e] = fmaf(cwt, val[e], acc[e]);
            }
        }
    }
    store_float<T, VEC>(y + pixel * s.c + g * s.d + v * VEC, acc);
}

template <typename T, int VEC>
cudaError_t launch(const Dcnv4Shape& s, const Dcnv4Launch& l, const void* value, const void* offset_mask, void* y,
                   cudaStream_t stream) {
    Dcnv4Shape sv = s;
    sv.vecs_per_group = s.d / VEC;
    dcnv4_kernel<T, VEC><<<static_cast<unsigned>(l.blocks), l.threads, 0, stream>>>(
        sv, static_cast<const T*>(value), static_cast<const T*>(offset_mask), static_cast<T*>(y));
    return dc_kernels::launch_status();
}

// Largest power of two (<= 8) elements that both addresses are a multiple of.
int aligned_elems(const void* a, const void* b, int elem_bytes) {
    for (int e = 8; e > 1; e /= 2) {
        const uintptr_t bytes = static_cast<uintptr_t>(e) * static_cast<uintptr_t>(elem_bytes);
        if (reinterpret_cast<uintptr_t>(a) % bytes == 0 && reinterpret_cast<uintptr_t>(b) % bytes == 0) return e;
    }
    return 1;
}

template <typename T>
cudaError_t dcnv4_typed(const Dcnv4Shape& s, const void* value, const void* offset_mask, void* y,
                        cudaStream_t stream) {
    int device = 0;
    int sms = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (err != cudaSuccess) return err;
    const int eb = static_cast<int>(sizeof(T));
    const Dcnv4Launch l = dcnv4_launch_config(s, eb, aligned_elems(value, y, eb), sms);
    if (l.blocks > dc_kernels::kMaxGridX) return cudaErrorInvalidValue;
    if constexpr (sizeof(T) == 2) {  // 8 x 2 bytes: one 16-byte access; never chosen for fp32
        if (l.vec == 8) return launch<T, 8>(s, l, value, offset_mask, y, stream);
    }
    if (l.vec == 4) return launch<T, 4>(s, l, value, offset_mask, y, stream);
    if (l.vec == 2) return launch<T, 2>(s, l, value, offset_mask, y, stream);
    return launch<T, 1>(s, l, value, offset_mask, y, stream);
}

}  // namespace

extern "C" cudaError_t dc_dcnv4_forward(dc_dtype dtype, const dc_dcnv4_params* p, const void* value,
                                        const void* offset_mask, void* y, cudaStream_t stream) {
    if (p == nullptr) return cudaErrorInvalidValue;
    if (p->n < 0 || p->h < 1 || p->w < 1 || p->group < 1 || p->group_channels < 1 || p->kh < 1 || p->kw < 1 ||
        p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 || p->dil_w < 1 || p->pad_h < 0 || p->pad_w < 0 ||
        (p->remove_center != 0 && p->remove_center != 1))
        return cudaErrorInvalidValue;
    Dcnv4Shape s{};
    s.n = p->n;
    s.h = p->h;
    s.w = p->w;
    s.g = p->group;
    s.d = p->group_channels;
    s.c = p->group * p->group_channels;
    s.kh = p->kh;
    s.kw = p->kw;
    s.sh = p->stride_h;
    s.sw = p->stride_w;
    s.ph = p->pad_h;
    s.pw = p->pad_w;
    s.dh = p->dil_h;
    s.dw = p->dil_w;
    s.ho = dc_conv_out_size(p->h, p->kh, p->stride_h, p->pad_h, p->dil_h);
    s.wo = dc_conv_out_size(p->w, p->kw, p->stride_w, p->pad_w, p->dil_w);
    s.k = p->kh * p->kw - p->remove_center;
    s.p = static_cast<int>(dc_kernels::ceil_div(static_cast<long long>(s.g) * s.k * 3, 8) * 8);
    s.remove_center = p->remove_center;
    s.offset_scale = p->offset_scale;
    if (s.ho < 1 || s.wo < 1 || s.k < 1) return cudaErrorInvalidValue;
    if (s.n == 0) return cudaSuccess;
    if (value == nullptr || offset_mask == nullptr || y == nullptr) return cudaErrorInvalidValue;
    return dc_kernels::dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        return dcnv4_typed<T>(s, value, offset_mask, y, stream);
    });
}
