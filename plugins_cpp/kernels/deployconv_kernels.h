// deployconv CUDA kernels: the small C launch API shared by the TensorRT plugins (plugins_cpp/trt) and the
// PyTorch extension (plugins_cpp/torch_ext). Plain CUDA, no TensorRT, no allocation inside a launch: every
// launch is stream-ordered and returns cudaSuccess, cudaErrorInvalidValue for arguments it does not support,
// or the launch error. Semantics are those of the PyTorch references in deployconv/ops/*.py (the ground truth).
#pragma once

#include <cuda_runtime_api.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dc_dtype { DC_FLOAT32 = 0, DC_FLOAT16 = 1, DC_BFLOAT16 = 2 } dc_dtype;

// SKA (LSNet), NCHW: y[b,c,h,w] = sum_{i,j<3} x[b,c,h-1+i,w-1+j] * wt[b, c % groups, 3i+j, h, w], zero padded.
// Optional fused LSConv epilogue: y = scale[c] * y + shift[c] + residual[b,c,h,w]; scale/shift are fp32 (C,)
// device arrays, residual has x's dtype and shape; each may be NULL (scale NULL = 1, shift NULL = 0).
typedef struct dc_ska_params {
    int n, c, h, w;
    int groups;  // G: weight groups, divides c; LSNet uses c / 8
} dc_ska_params;
cudaError_t dc_ska_forward(dc_dtype dtype, const dc_ska_params* p, const void* x, const void* wt,
                           const float* scale, const float* shift, const void* residual, void* y,
                           cudaStream_t stream);

// DCNv2 (modulated deformable conv), NCHW, torchvision / ONNX DeformConv semantics. offset is
// (N, 2*offset_groups*kh*kw, Ho, Wo) with (dy, dx) pairs; mask (N, offset_groups*kh*kw, Ho, Wo) or NULL (=1);
// bias (Cout,) or NULL. Sampling coordinates and accumulation are fp32 for every dtype.
typedef struct dc_deform_conv2d_params {
    int n, c_in, h, w;
    int c_out, kh, kw;
    int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int groups, offset_groups;
} dc_deform_conv2d_params;
// Bytes of scratch the launch needs (0 if none); the caller owns it (TensorRT workspace / torch allocator).
size_t dc_deform_conv2d_workspace_size(dc_dtype dtype, const dc_deform_conv2d_params* p);
cudaError_t dc_deform_conv2d_forward(dc_dtype dtype, const dc_deform_conv2d_params* p, const void* x,
                                     const void* weight, const void* offset, const void* mask,
                                     const void* bias, void* y, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream);

// DCNv4 core op (OpenGVLab semantics, see deployconv/ops/dcnv4.py), NHWC: value (N, H, W, G*D),
// offset_mask (N, Ho, Wo, P) with P = ceil(G*K*3/8)*8, y (N, Ho, Wo, G*D). fp32 coordinates and accumulation.
typedef struct dc_dcnv4_params {
    int n, h, w;
    int group, group_channels;
    int kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    float offset_scale;
    int remove_center;
} dc_dcnv4_params;
cudaError_t dc_dcnv4_forward(dc_dtype dtype, const dc_dcnv4_params* p, const void* value,
                             const void* offset_mask, void* y, cudaStream_t stream);

// Large-kernel depthwise conv, NCHW: y = depthwise_conv(x, weight (C, 1, k, k), stride, pad) + bias (C,) or NULL.
typedef struct dc_dwconv2d_params {
    int n, c, h, w;
    int k, stride, pad;
} dc_dwconv2d_params;
cudaError_t dc_dwconv2d_forward(dc_dtype dtype, const dc_dwconv2d_params* p, const void* x, const void* weight,
                                const void* bias, void* y, cudaStream_t stream);

// Output size of a conv along one axis: floor((in + 2*pad - dil*(k-1) - 1) / stride) + 1, and 0 when the kernel
// does not fit (C's division truncates towards zero, so a span in (-stride, 0) would otherwise give 1).
static inline int dc_conv_out_size(int in, int k, int stride, int pad, int dil) {
    const int span = in + 2 * pad - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

#ifdef __cplusplus
}
#endif
