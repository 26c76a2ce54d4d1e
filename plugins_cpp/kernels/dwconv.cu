// Large-kernel depthwise conv, NCHW: y[n,c] = conv(x[n,c], weight[c] (k x k), stride S in {1, 2}, pad) + bias[c].
//
// Compute-bound from ~7x7 up when the halo is reused, so each block stages, per (n, c) plane it owns, a
// zero-padded input tile with its halo and the k x k weights (as fp32, kernel rows padded with zeros to a
// multiple of 4) in shared memory; every input element then comes from DRAM once per tile.
// Each thread computes RY x RX = 4 x 4 outputs (RX adjacent in a row, RY adjacent rows). For one input row of the
// tile it slides a register window along the kernel width, 4 taps at a time: one 16-byte shared load brings
// 4 new input columns, one 16-byte broadcast load per output row brings 4 weights, and 4*4 FMAs per output row
// use them -- about 1 shared load per 13 FMAs. An input row r serves output row ry with kernel row r - S*ry,
// so it is loaded once for all RY output rows. Zero padding comes from the tile (outside reads are 0) and the
// padded weight columns (0 x finite = 0). Accumulation in fp32; tile shapes from `dwconv_launch_config`.
#include "common.cuh"

namespace {

using dc_kernels::from_float;
using dc_kernels::to_float;

constexpr int RX = 4;               // outputs per thread along a row (one float4 of taps per step)
constexpr int RY = 4;               // output rows per thread
constexpr int kMaxThreads = 256;
constexpr int kSmemBudget = 48 * 1024;  // the default dynamic shared memory limit: no opt-in attribute

__host__ __device__ constexpr int round4(int v) { return (v + 3) / 4 * 4; }
// Register window: S*(RX-1) + RX input columns cover RX outputs x 4 taps; rounded to whole float4s.
__host__ __device__ constexpr int window(int s) { return round4(s * (RX - 1) + RX); }

struct DwShape {
    int n, c, h, w, k, pad;
    int ho, wo;
    int kpad;          // k rounded up to a multiple of 4
    int in_h, pitch;   // tile rows and row pitch (floats, multiple of 4)
    int plane_floats;  // weights + tile of one plane
    int tiles_w;       // tiles per output row
};

struct DwLaunch {
    int tx, ty, tz;    // threads: along x (RX outputs each), y (RY rows each), planes per block
    int in_h, pitch, plane_floats;
    size_t smem_bytes;
};

int next_pow2(int v) {
    int p = 1;
    while (p < v) p *= 2;
    return p;
}

// Pure: tile geometry for an Ho x Wo output with a k x k kernel at stride s.
// Threads per block: as many as the output needs (up to 16 x 16, i.e. a 64 x 64 tile), halved along the larger
// side until one plane's tile fits the shared memory budget; small maps stack planes (tz) up to 128 threads.
DwLaunch dwconv_launch_config(long long planes, int ho, int wo, int k, int s) {
    DwLaunch l{};
    const int kpad = round4(k);
    auto plane_floats = [&](int tx, int ty, int* in_h, int* pitch) {
        *in_h = s * (RY * ty - 1) + k;
        *pitch = round4(s * RX * (tx - 1) + kpad + window(s) - RX);
        return k * kpad + *in_h * *pitch;
    };
    l.tx = next_pow2(static_cast<int>(dc_kernels::ceil_div(wo, RX)));
    l.ty = next_pow2(static_cast<int>(dc_kernels::ceil_div(ho, RY)));
    l.tx = l.tx > 16 ? 16 : l.tx;
    l.ty = l.ty > 16 ? 16 : l.ty;
    l.plane_floats = plane_floats(l.tx, l.ty, &l.in_h, &l.pitch);
    while (l.plane_floats * 4 > kSmemBudget && (l.tx > 1 || l.ty > 1)) {
        if (l.ty >= l.tx) {
            l.ty /= 2;
        } else {
            l.tx /= 2;
        }
        l.plane_floats = plane_floats(l.tx, l.ty, &l.in_h, &l.pitch);
    }
    l.tz = 1;
    while (l.tx * l.ty * l.tz * 2 <= 128 && (l.tz * 2) * l.plane_floats * 4 <= kSmemBudget && l.tz * 2 <= planes)
        l.tz *= 2;
    l.smem_bytes = static_cast<size_t>(l.tz) * l.plane_floats * sizeof(float);
    return l;
}

template <typename T, int S>
__global__ void __launch_bounds__(kMaxThreads)
    dwconv_kernel(DwShape s, const T* __restrict__ x, const T* __restrict__ weight, const T* __restrict__ bias,
                  T* __restrict__ y) {
    extern __shared__ float4 smem4[];  // float4: the buffer is 16-byte aligned
    constexpr int WS = window(S);
    const long long plane = static_cast<long long>(blockIdx.x) * blockDim.z + threadIdx.z;
    const bool plane_ok = plane < static_cast<long long>(s.n) * s.c;
    const int ch = plane_ok ? static_cast<int>(plane % s.c) : 0;
    float* wsm = reinterpret_cast<float*>(smem4) + threadIdx.z * s.plane_floats;  // [k][kpad]
    float* tile = wsm + s.k * s.kpad;                                              // [in_h][pitch]
    const int nthreads = blockDim.x * blockDim.y;
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;

    const int tile_y = blockIdx.y / s.tiles_w;
    const int tile_x = blockIdx.y % s.tiles_w;
    const int oy0 = tile_y * blockDim.y * RY;
    const int ox0 = tile_x * blockDim.x * RX;
    const int iy0 = oy0 * S - s.pad;
    const int ix0 = ox0 * S - s.pad;

    // Stage weights (zero-padded columns) and the input tile (zero outside the image) of this plane.
    for (int e = tid; e < s.k * s.kpad; e += nthreads) {
        const int ky = e / s.kpad;
        const int kx = e % s.kpad;
        wsm[e] = (plane_ok && kx < s.k) ? to_float(weight[(static_cast<long long>(ch) * s.k + ky) * s.k + kx]) : 0.f;
    }
    const T* xp = x + (plane_ok ? plane : 0) * s.h * s.w;
    for (int e = tid; e < s.in_h * s.pitch; e += nthreads) {
        const int r = e / s.pitch;
        const int col = e % s.pitch;
        const int gy = iy0 + r;
        const int gx = ix0 + col;
        float v = 0.f;
        if (plane_ok && gy >= 0 && gy < s.h && gx >= 0 && gx < s.w)
            v = to_float(xp[static_cast<long long>(gy) * s.w + gx]);
        tile[e] = v;
    }
    __syncthreads();

    const int oyl = threadIdx.y * RY;  // first output row / column of this thread, within the tile
    const int oxl = threadIdx.x * RX;
    float acc[RY][RX];
#pragma unroll
    for (int ry = 0; ry < RY; ++ry) {
#pragma unroll
        for (int r = 0; r < RX; ++r) acc[ry][r] = 0.f;
    }

    const int rows = S * (RY - 1) + s.k;  // input rows that reach this thread's outputs
    for (int ir = 0; ir < rows; ++ir) {
        const float* trow = tile + (S * oyl + ir) * s.pitch + S * oxl;  // 16-byte aligned: pitch, S*oxl % 4 == 0
        float win[WS];                                                  // win[j] = trow[kx0 + j]
#pragma unroll
        for (int q = 0; q < WS / 4 - 1; ++q) {
            const float4 v = *reinterpret_cast<const float4*>(trow + 4 * q);
            win[4 * q] = v.x;
            win[4 * q + 1] = v.y;
            win[4 * q + 2] = v.z;
            win[4 * q + 3] = v.w;
        }
        for (int kx0 = 0; kx0 < s.kpad; kx0 += 4) {
            const float4 nv = *reinterpret_cast<const float4*>(trow + kx0 + WS - 4);
            win[WS - 4] = nv.x;
            win[WS - 3] = nv.y;
            win[WS - 2] = nv.z;
            win[WS - 1] = nv.w;
#pragma unroll
            for (int ry = 0; ry < RY; ++ry) {
                const int ky = ir - S * ry;
                if (ky < 0 || ky >= s.k) continue;
                const float4 w4 = *reinterpret_cast<const float4*>(wsm + ky * s.kpad + kx0);
                const float wv[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
                for (int u = 0; u < 4; ++u) {
#pragma unroll
                    for (int r = 0; r < RX; ++r) acc[ry][r] = fmaf(win[S * r + u], wv[u], acc[ry][r]);
                }
            }
#pragma unroll
            for (int j = 0; j < WS - 4; ++j) win[j] = win[j + 4];
        }
    }

    if (!plane_ok) return;
    const float b = bias != nullptr ? to_float(bias[ch]) : 0.f;
    T* yp = y + plane * s.ho * s.wo;
#pragma unroll
    for (int ry = 0; ry < RY; ++ry) {
        const int oy = oy0 + oyl + ry;
        if (oy >= s.ho) break;
#pragma unroll
        for (int r = 0; r < RX; ++r) {
            const int ox = ox0 + oxl + r;
            if (ox < s.wo) yp[static_cast<long long>(oy) * s.wo + ox] = from_float<T>(acc[ry][r] + b);
        }
    }
}

template <typename T>
cudaError_t launch(const dc_dwconv2d_params& p, const void* x, const void* weight, const void* bias, void* y,
                   cudaStream_t stream) {
    DwShape s{};
    s.n = p.n;
    s.c = p.c;
    s.h = p.h;
    s.w = p.w;
    s.k = p.k;
    s.pad = p.pad;
    s.ho = dc_conv_out_size(p.h, p.k, p.stride, p.pad, 1);
    s.wo = dc_conv_out_size(p.w, p.k, p.stride, p.pad, 1);
    s.kpad = round4(p.k);
    const long long planes = static_cast<long long>(p.n) * p.c;
    const DwLaunch l = dwconv_launch_config(planes, s.ho, s.wo, p.k, p.stride);
    if (l.plane_floats * 4 > kSmemBudget) return cudaErrorInvalidValue;  // a kernel too large for one tile
    s.in_h = l.in_h;
    s.pitch = l.pitch;
    s.plane_floats = l.plane_floats;
    s.tiles_w = static_cast<int>(dc_kernels::ceil_div(s.wo, l.tx * RX));
    const long long tiles = s.tiles_w * dc_kernels::ceil_div(s.ho, l.ty * RY);
    const long long gx = dc_kernels::ceil_div(planes, l.tz);
    if (gx > dc_kernels::kMaxGridX || tiles > dc_kernels::kMaxGridYZ) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(tiles));
    const dim3 block(l.tx, l.ty, l.tz);
    const T* xt = static_cast<const T*>(x);
    const T* wt = static_cast<const T*>(weight);
    const T* bt = static_cast<const T*>(bias);
    T* yt = static_cast<T*>(y);
    if (p.stride == 1) {
        dwconv_kernel<T, 1><<<grid, block, l.smem_bytes, stream>>>(s, xt, wt, bt, yt);
    } else {
        dwconv_kernel<T, 2><<<grid, block, l.smem_bytes, stream>>>(s, xt, wt, bt, yt);
    }
    return dc_kernels::launch_status();
}

}  // namespace

extern "C" cudaError_t dc_dwconv2d_forward(dc_dtype dtype, const dc_dwconv2d_params* p, const void* x,
                                           const void* weight, const void* bias, void* y, cudaStream_t stream) {
    if (p == nullptr) return cudaErrorInvalidValue;
    if (p->n < 0 || p->c < 1 || p->h < 1 || p->w < 1 || p->k < 1 || p->pad < 0) return cudaErrorInvalidValue;
    if (p->stride != 1 && p->stride != 2) return cudaErrorInvalidValue;
    const int ho = dc_conv_out_size(p->h, p->k, p->stride, p->pad, 1);
    const int wo = dc_conv_out_size(p->w, p->k, p->stride, p->pad, 1);
    if (ho < 1 || wo < 1) return cudaErrorInvalidValue;
    if (p->n == 0) return cudaSuccess;
    if (x == nullptr || weight == nullptr || y == nullptr) return cudaErrorInvalidValue;
    return dc_kernels::dispatch_dtype(dtype, [&](auto tag) {
        using T = decltype(tag);
        return launch<T>(*p, x, weight, bias, y, stream);
    });
}
