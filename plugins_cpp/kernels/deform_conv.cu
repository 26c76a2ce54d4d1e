// DCNv2 (modulated deformable conv), NCHW, torchvision / ONNX DeformConv semantics, as one fused gather + GEMM.
//
// Per weight group the op is a GEMM: out[o, pix] = sum_{c, p} W[o, c, p] * col[(c, p), pix], where col holds
// the modulated bilinear samples mask * bilinear(x[n, c], y, x) at
//     y = oy*sh - ph + i*dh + offset[n, 2(og*K + p), oy, ox],  x = ox*sw - pw + j*dw + offset[n, 2(og*K+p)+1, ...]
// (p = i*kw + j, og = c / (C / offset_groups); a corner outside the image reads 0).
// im2col implementations write col, K times the input, to global memory. Here a block owns a tile of BM
// output channels x BN output pixels (pixels flattened over the batch) and walks the reduction in chunks that
// never leave shared memory:
//   for each kernel point p, for each offset group the weight group's channels touch:
//     the BN pixels' sampling table for (p, og) -> shared memory (4 corner indices, 4 weights with the mask
//       folded in; computed once, reused by every channel of the offset group);
//     for each chunk of BK channels: gather col[BK x BN] from x through the table, load W[BM x BK], then each
//       thread accumulates a TM x TN sub-tile with fp32 FMAs.
// The reduction order is (p, c) instead of the reference's (c, p): the same terms, summed in another order.
// Sampling coordinates, bilinear weights and accumulation are fp32 for every dtype. No workspace.
#include "common.cuh"

namespace {

using dc_kernels::from_float;
using dc_kernels::to_float;

constexpr int BM = 64;   // output channels per block
constexpr int BN = 64;   // output pixels per block
constexpr int BK = 16;   // input channels per reduction chunk
constexpr int TM = 4;    // output channels per thread
constexpr int TN = 4;    // output pixels per thread
constexpr int kThreads = (BM / TM) * (BN / TN);  // 256
constexpr int kGatherRows = kThreads / BN;        // channels one gather pass covers
constexpr int kWPitch = BM + 4;                   // padded: the transposing weight store conflicts 2-way, not 16
static_assert(BK % kGatherRows == 0, "a gather pass must tile the chunk");
static_assert(kThreads >= BN, "one thread per pixel builds the sampling table");

struct DcnShape {
    int n, c, h, w;
    int o, kh, kw, k;
    int sh, sw, ph, pw, dh, dw;
    int ho, wo;
    int cg;             // input channels per weight group
    int og;             // offset groups
    int c_per_og;       // input channels per offset group
    int opg;            // output channels per weight group
    int o_tiles;        // ceil(opg / BM)
    long long npix;     // n * ho * wo
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    deform_conv2d_kernel(DcnShape s, const T* __restrict__ x, const T* __restrict__ weight,
                         const T* __restrict__ offset, const T* __restrict__ mask, const T* __restrict__ bias,
                         T* __restrict__ y) {
    __shared__ __align__(16) float ws[BK][kWPitch];  // weight tile, [channel][output channel]
    __shared__ __align__(16) float cs[BK][BN];       // sample tile, [channel][pixel]
    __shared__ int s_idx[4][BN];                     // corner offsets y*W + x in the plane, -1 = outside
    __shared__ float s_wt[4][BN];                    // corner weights, mask folded in

    const int tid = threadIdx.x;
    const long long pix0 = static_cast<long long>(blockIdx.x) * BN;
    const int grp = blockIdx.y / s.o_tiles;           // weight group
    const int o0 = (blockIdx.y % s.o_tiles) * BM;     // first output channel of the tile, within the group
    const long long L = static_cast<long long>(s.ho) * s.wo;
    const long long hw = static_cast<long long>(s.h) * s.w;

    // The pixel this thread samples for (table and gather): column `gp` of the tile.
    const int gp = tid % BN;
    const int g_row = tid / BN;
    const long long gpix = pix0 + gp;
    const bool gpix_ok = gpix < s.npix;
    const int g_n = gpix_ok ? static_cast<int>(gpix / L) : 0;
    const int g_l = gpix_ok ? static_cast<int>(gpix % L) : 0;
    const int g_oy = g_l / s.wo;
    const int g_ox = g_l % s.wo;

    // Thread's sub-tile of the output: channels ty*TM.., pixels tx*TN..
    const int tx = tid % (BN / TN);
    const int ty = tid / (BN / TN);
    float acc[TM][TN];
#pragma unroll
    for (int a = 0; a < TM; ++a) {
#pragma unroll
        for (int b = 0; b < TN; ++b) acc[a][b] = 0.f;
    }

    const int c_begin = grp * s.cg;
    const int c_end = c_begin + s.cg;
    for (int p = 0; p < s.k; ++p) {
        const int ki = p / s.kw;
        const int kj = p % s.kw;
        int c = c_begin;
        while (c < c_end) {
            const int og = c / s.c_per_og;
            const int seg_end = min(c_end, (og + 1) * s.c_per_og);

            // Sampling table for (p, og). Every reader of the previous table passed the chunk's trailing barrier.
            if (tid < BN) {
                int idx[4] = {-1, -1, -1, -1};
                float wt[4] = {0.f, 0.f, 0.f, 0.f};
                if (gpix_ok) {
                    const int och = og * s.k + p;  // offset pair / mask channel
                    const long long o_off = ((static_cast<long long>(g_n) * s.og * s.k + och) * 2) * L + g_l;
                    const float py = static_cast<float>(g_oy * s.sh - s.ph + ki * s.dh) + to_float(offset[o_off]);
                    const float px =
                        static_cast<float>(g_ox * s.sw - s.pw + kj * s.dw) + to_float(offset[o_off + L]);
                    const float m =
                        mask != nullptr ? to_float(mask[(static_cast<long long>(g_n) * s.og * s.k + och) * L + g_l])
                                        : 1.f;
                    // Fully outside (or NaN): every corner reads zero.
                    if (py > -1.f && py < static_cast<float>(s.h) && px > -1.f && px < static_cast<float>(s.w)) {
                        const float fy = floorf(py);
                        const float fx = floorf(px);
                        const float ly = py - fy;
                        const float lx = px - fx;
                        const int y0 = static_cast<int>(fy);
                        const int x0 = static_cast<int>(fx);
                        const float wy[2] = {(1.f - ly) * m, ly * m};
                        const float wx[2] = {1.f - lx, lx};
#pragma unroll
                        for (int q = 0; q < 4; ++q) {
                            const int yi = y0 + (q >> 1);
                            const int xi = x0 + (q & 1);
                            if (yi >= 0 && yi < s.h && xi >= 0 && xi < s.w) {
                                idx[q] = yi * s.w + xi;
                                wt[q] = wy[q >> 1] * wx[q & 1];
                            }
                        }
                    }
                }
#pragma unroll
                for (int q = 0; q < 4; ++q) {
                    s_idx[q][gp] = idx[q];
                    s_wt[q][gp] = wt[q];
                }
            }
            __syncthreads();

            for (int cc = c; cc < seg_end; cc += BK) {
                const int kc = min(BK, seg_end - cc);  // channels in this chunk; the rest of the tile is zero
                // Gather: column gp of the sample tile, channels g_row, g_row + kGatherRows, ...
                for (int kk = g_row; kk < BK; kk += kGatherRows) {
                    float v = 0.f;
                    if (kk < kc && gpix_ok) {
                        const T* plane = x + (static_cast<long long>(g_n) * s.c + cc + kk) * hw;
#pragma unroll
                        for (int q = 0; q < 4; ++q) {
                            const int id = s_idx[q][gp];
                            if (id >= 0) v = fmaf(s_wt[q][gp], to_float(plane[id]), v);
                        }
                    }
                    cs[kk][gp] = v;
                }
                // Weight tile: ws[kk][mo] = W[grp*opg + o0 + mo, cc - c_begin + kk, ki, kj], zero outside.
                for (int e = tid; e < BK * BM; e += kThreads) {
                    const int mo = e / BK;
                    const int kk = e % BK;  // adjacent threads: adjacent input channels (stride K in memory)
                    const int o = o0 + mo;
                    float v = 0.f;
                    if (kk < kc && o < s.opg) {
                        const long long widx =
                            ((static_cast<long long>(grp) * s.opg + o) * s.cg + (cc - c_begin + kk)) * s.k + p;
                        v = to_float(weight[widx]);
                    }
                    ws[kk][mo] = v;
                }
                __syncthreads();
#pragma unroll
                for (int kk = 0; kk < BK; ++kk) {
                    const float4 a4 = *reinterpret_cast<const float4*>(&ws[kk][ty * TM]);
                    const float4 b4 = *reinterpret_cast<const float4*>(&cs[kk][tx * TN]);
                    const float av[TM] = {a4.x, a4.y, a4.z, a4.w};
                    const float bv[TN] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
                    for (int a = 0; a < TM; ++a) {
#pragma unroll
                        for (int b = 0; b < TN; ++b) acc[a][b] = fmaf(av[a], bv[b], acc[a][b]);
                    }
                }
                __syncthreads();
            }
            c = seg_end;
        }
    }

    // Epilogue: + bias, one rounding to T, y[n, grp*opg + o, oy, ox].
#pragma unroll
    for (int a = 0; a < TM; ++a) {
        const int o = o0 + ty * TM + a;
        if (o >= s.opg) continue;
        const int oc = grp * s.opg + o;
        const float bv = bias != nullptr ? to_float(bias[oc]) : 0.f;
#pragma unroll
        for (int b = 0; b < TN; ++b) {
            const long long pp = pix0 + tx * TN + b;
            if (pp >= s.npix) continue;
            const long long n = pp / L;
            const long long l = pp % L;
            y[(n * s.o + oc) * L + l] = from_float<T>(acc[a][b] + bv);
        }
    }
}

bool valid(const dc_deform_conv2d_params& p) {
    if (p.n < 0 || p.c_in < 1 || p.h < 1 || p.w < 1 || p.c_out < 1 || p.kh < 1 || p.kw < 1) return false;
    if (p.stride_h < 1 || p.stride_w < 1 || p.dil_h < 1 || p.dil_w < 1 || p.pad_h < 0 || p.pad_w < 0) return false;
    if (p.groups < 1 || p.offset_groups < 1) return false;
    if (p.c_in % p.groups != 0 || p.c_out % p.groups != 0 || p.c_in % p.offset_groups != 0) return false;
    if (static_cast<long long>(p.h) * p.w > 2147483647LL) return false;  // corner offsets in a plane are ints
    const int ho = dc_conv_out_size(p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
    const int wo = dc_conv_out_size(p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
    return ho >= 1 && wo >= 1;
}

template <typename T>
cudaError_t launch(const dc_deform_conv2d_params& p, const void* x, const void* weight, const void* offset,
                   const void* mask, const void* bias, void* y, cudaStream_t stream) {
    DcnShape s{};
    s.n = p.n;
    s.c = p.c_in;
    s.h = p.h;
    s.w = p.w;
    s.o = p.c_out;
    s.kh = p.kh;
    s.kw = p.kw;
    s.k = p.kh * p.kw;
    s.sh = p.stride_h;
    s.sw = p.stride_w;
    s.ph = p.pad_h;
    s.pw = p.pad_w;
    s.dh = p.dil_h;
    s.dw = p.dil_w;
    s.ho = dc_conv_out_size(p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
    s.wo = dc_conv_out_size(p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
    s.cg = p.c_in / p.groups;
    s.og = p.offset_groups;
    s.c_per_og = p.c_in / p.offset_groups;
    s.opg = p.c_out / p.groups;
    s.o_tiles = static_cast<int>(dc_kernels::ceil_div(s.opg, BM));
    s.npix = static_cast<long long>(s.n) * s.ho * s.wo;
    const long long gx = dc_kernels::ceil_div(s.npix, BN);
    const long long gy = static_cast<long long>(p.groups) * s.o_tiles;
    if (gx > dc_kernels::kMaxGridX || gy > dc_kernels::kMaxGridYZ) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
    deform_conv2d_kernel<T><<<grid, kThreads, 0, stream>>>(
        s, static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(offset),
        static_cast<const T*>(mask), static_cast<const T*>(bias), static_cast<T*>(y));
    return dc_kernels::launch_status();
}

}  // namespace

extern "C" size_t dc_deform_conv2d_workspace_size(dc_dtype, const dc_deform_conv2d_params*) { return 0; }

extern "C" cudaError_t dc_deform_conv2d_forward(dc_dtype dtype, const dc_deform_conv2d_params* p, const void* x,
                                                const void* weight, const void* offset, const void* mask,
                                                const void* bias, void* y, void*, size_t, cudaStream_t stream) {
    if (p == nullptr || !valid(*p)) return cudaErrorInvalidValue;
    if (p->n == 0) return cudaSuccess;
    if (x == nullptr || weight == nullptr || offset == nullptr || y == nullptr) return cudaErrorInvalidValue;
    return dc_kernels::dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        return launch<T>(*p, x, weight, offset, mask, bias, y, stream);
    });
}
