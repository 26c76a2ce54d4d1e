// PyTorch binding of the deployconv CUDA kernels (plugins_cpp/kernels), for GPU tests and benchmarks.
// Each function checks device / dtype / contiguity / shapes, allocates the output with torch's allocator and
// launches on the current CUDA stream of the input's device. The Python side (deployconv/plugins/cuda_ext.py)
// validates arguments the user's way first; these checks guard the C boundary. The C++ functions are named
// *_forward because torch's headers own a namespace `ska`.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <limits>

#include "deployconv_kernels.h"

namespace {

dc_dtype dtype_of(const at::Tensor& t) {
    switch (t.scalar_type()) {
        case at::kFloat: return DC_FLOAT32;
        case at::kHalf: return DC_FLOAT16;
        case at::kBFloat16: return DC_BFLOAT16;
        default: TORCH_CHECK(false, "deployconv kernels take float32, float16 or bfloat16, got ", t.scalar_type());
    }
    return DC_FLOAT32;  // unreachable
}

// A CUDA tensor on `like`'s device, contiguous, with `like`'s dtype (or `dtype` when given).
void check_tensor(const at::Tensor& t, const char* name, const at::Tensor& like,
                  c10::optional<at::ScalarType> dtype = c10::nullopt) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.device() == like.device(), name, " is on ", t.device(), " but the input on ", like.device());
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    const at::ScalarType want = dtype.value_or(like.scalar_type());
    TORCH_CHECK(t.scalar_type() == want, name, " must be ", want, ", got ", t.scalar_type());
}

int to_int(int64_t v, const char* what) {
    TORCH_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), what, " = ", v, " does not fit the kernels' int");
    return static_cast<int>(v);
}

void check_status(cudaError_t e, const char* op) {
    TORCH_CHECK(e == cudaSuccess, op, " failed: ", cudaGetErrorString(e),
                e == cudaErrorInvalidValue ? " (the kernel does not support these arguments)" : "");
}

const void* ptr_or_null(const c10::optional<at::Tensor>& t) { return t.has_value() ? t->data_ptr() : nullptr; }

at::Tensor ska_forward(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& scale,
               const c10::optional<at::Tensor>& shift, const c10::optional<at::Tensor>& residual) {
    check_tensor(x, "x", x);
    check_tensor(w, "w", x);
    TORCH_CHECK(x.dim() == 4 && w.dim() == 5, "ska: x must be (B, C, H, W) and w (B, G, 9, H, W)");
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3), g = w.size(1);
    TORCH_CHECK(w.size(0) == b && w.size(2) == 9 && w.size(3) == h && w.size(4) == wd && g > 0 && c % g == 0,
                "ska: w must be (B, G, 9, H, W) with G dividing C, got ", w.sizes(), " for x ", x.sizes());
    if (scale) {
        check_tensor(*scale, "scale", x, at::kFloat);
        TORCH_CHECK(scale->numel() == c, "ska: scale must have C = ", c, " elements");
    }
    if (shift) {
        check_tensor(*shift, "shift", x, at::kFloat);
        TORCH_CHECK(shift->numel() == c, "ska: shift must have C = ", c, " elements");
    }
    if (residual) {
        check_tensor(*residual, "residual", x);
        TORCH_CHECK(residual->sizes() == x.sizes(), "ska: residual must have x's shape");
    }
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor y = at::empty_like(x);
    const dc_ska_params p{to_int(b, "B"), to_int(c, "C"), to_int(h, "H"), to_int(wd, "W"), to_int(g, "G")};
    check_status(dc_ska_forward(dtype_of(x), &p, x.data_ptr(), w.data_ptr(),
                                scale ? scale->data_ptr<float>() : nullptr,
                                shift ? shift->data_ptr<float>() : nullptr,
                                ptr_or_null(residual), y.data_ptr(), c10::cuda::getCurrentCUDAStream().stream()),
                 "dc_ska_forward");
    return y;
}

at::Tensor deform_conv2d_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& offset,
                                 const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& mask,
                                 int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, int64_t dil_h,
                                 int64_t dil_w) {
    check_tensor(x, "input", x);
    check_tensor(weight, "weight", x);
    check_tensor(offset, "offset", x);
    TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && offset.dim() == 4, "deform_conv2d: 4-D tensors expected");
    dc_deform_conv2d_params p{};
    p.n = to_int(x.size(0), "N");
    p.c_in = to_int(x.size(1), "C");
    p.h = to_int(x.size(2), "H");
    p.w = to_int(x.size(3), "W");
    p.c_out = to_int(weight.size(0), "O");
    p.kh = to_int(weight.size(2), "kh");
    p.kw = to_int(weight.size(3), "kw");
    p.stride_h = to_int(stride_h, "stride_h");
    p.stride_w = to_int(stride_w, "stride_w");
    p.pad_h = to_int(pad_h, "pad_h");
    p.pad_w = to_int(pad_w, "pad_w");
    p.dil_h = to_int(dil_h, "dil_h");
    p.dil_w = to_int(dil_w, "dil_w");
    const int64_t cg = weight.size(1);
    TORCH_CHECK(cg > 0 && p.c_in % cg == 0, "deform_conv2d: weight.shape[1] must divide the input channels");
    p.groups = to_int(p.c_in / cg, "groups");
    const int64_t k = static_cast<int64_t>(p.kh) * p.kw;
    TORCH_CHECK(offset.size(1) > 0 && offset.size(1) % (2 * k) == 0,
                "deform_conv2d: offset must have 2*og*kh*kw channels");
    p.offset_groups = to_int(offset.size(1) / (2 * k), "offset_groups");
    const int ho = dc_conv_out_size(p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
    const int wo = dc_conv_out_size(p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
    TORCH_CHECK(ho >= 1 && wo >= 1, "deform_conv2d: empty output");
    TORCH_CHECK(offset.size(0) == p.n && offset.size(2) == ho && offset.size(3) == wo,
                "deform_conv2d: offset must be (N, 2*og*kh*kw, Ho, Wo) = (", p.n, ", ", offset.size(1), ", ", ho,
                ", ", wo, "), got ", offset.sizes());
    if (mask) {
        check_tensor(*mask, "mask", x);
        TORCH_CHECK(mask->dim() == 4 && mask->size(0) == p.n && mask->size(1) == p.offset_groups * k &&
                        mask->size(2) == ho && mask->size(3) == wo,
                    "deform_conv2d: mask must be (N, og*kh*kw, Ho, Wo), got ", mask->sizes());
    }
    if (bias) {
        check_tensor(*bias, "bias", x);
        TORCH_CHECK(bias->numel() == p.c_out, "deform_conv2d: bias must have O elements");
    }
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor y = at::empty({x.size(0), weight.size(0), ho, wo}, x.options());
    const dc_dtype dt = dtype_of(x);
    const size_t ws_bytes = dc_deform_conv2d_workspace_size(dt, &p);
    at::Tensor ws;
    if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
    check_status(dc_deform_conv2d_forward(dt, &p, x.data_ptr(), weight.data_ptr(), offset.data_ptr(),
                                          ptr_or_null(mask), ptr_or_null(bias), y.data_ptr(),
                                          ws_bytes > 0 ? ws.data_ptr() : nullptr, ws_bytes,
                                          c10::cuda::getCurrentCUDAStream().stream()),
                 "dc_deform_conv2d_forward");
    return y;
}

at::Tensor dcnv4_forward(const at::Tensor& value, const at::Tensor& offset_mask, int64_t kh, int64_t kw, int64_t sh,
                 int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t group, int64_t group_channels,
                 double offset_scale, int64_t remove_center) {
    check_tensor(value, "value", value);
    check_tensor(offset_mask, "offset_mask", value);
    TORCH_CHECK(value.dim() == 4 && offset_mask.dim() == 4, "dcnv4: value and offset_mask must be NHWC 4-D");
    dc_dcnv4_params p{};
    p.n = to_int(value.size(0), "N");
    p.h = to_int(value.size(1), "H");
    p.w = to_int(value.size(2), "W");
    p.group = to_int(group, "group");
    p.group_channels = to_int(group_channels, "group_channels");
    p.kh = to_int(kh, "kernel_h");
    p.kw = to_int(kw, "kernel_w");
    p.stride_h = to_int(sh, "stride_h");
    p.stride_w = to_int(sw, "stride_w");
    p.pad_h = to_int(ph, "pad_h");
    p.pad_w = to_int(pw, "pad_w");
    p.dil_h = to_int(dh, "dilation_h");
    p.dil_w = to_int(dw, "dilation_w");
    p.offset_scale = static_cast<float>(offset_scale);
    p.remove_center = to_int(remove_center, "remove_center");
    TORCH_CHECK(value.size(3) == group * group_channels, "dcnv4: value must have group*group_channels channels");
    const int ho = dc_conv_out_size(p.h, p.kh, p.stride_h, p.pad_h, p.dil_h);
    const int wo = dc_conv_out_size(p.w, p.kw, p.stride_w, p.pad_w, p.dil_w);
    const int64_t k = static_cast<int64_t>(p.kh) * p.kw - p.remove_center;
    const int64_t padded = (group * k * 3 + 7) / 8 * 8;
    TORCH_CHECK(ho >= 1 && wo >= 1 && k >= 1, "dcnv4: empty output or no sampling point");
    TORCH_CHECK(offset_mask.size(0) == p.n && offset_mask.size(1) == ho && offset_mask.size(2) == wo &&
                    offset_mask.size(3) == padded,
                "dcnv4: offset_mask must be (N, Ho, Wo, ceil(G*K*3/8)*8) = (", p.n, ", ", ho, ", ", wo, ", ", padded,
                "), got ", offset_mask.sizes());
    const c10::cuda::CUDAGuard guard(value.device());
    at::Tensor y = at::empty({value.size(0), ho, wo, value.size(3)}, value.options());
    check_status(dc_dcnv4_forward(dtype_of(value), &p, value.data_ptr(), offset_mask.data_ptr(), y.data_ptr(),
                                  c10::cuda::getCurrentCUDAStream().stream()),
                 "dc_dcnv4_forward");
    return y;
}

at::Tensor dwconv2d_forward(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                    int64_t stride, int64_t pad) {
    check_tensor(x, "x", x);
    check_tensor(weight, "weight", x);
    TORCH_CHECK(x.dim() == 4 && weight.dim() == 4, "dwconv2d: x (N, C, H, W) and weight (C, 1, k, k) expected");
    TORCH_CHECK(weight.size(0) == x.size(1) && weight.size(1) == 1 && weight.size(2) == weight.size(3),
                "dwconv2d: weight must be (C, 1, k, k), got ", weight.sizes());
    if (bias) {
        check_tensor(*bias, "bias", x);
        TORCH_CHECK(bias->numel() == x.size(1), "dwconv2d: bias must have C elements");
    }
    dc_dwconv2d_params p{};
    p.n = to_int(x.size(0), "N");
    p.c = to_int(x.size(1), "C");
    p.h = to_int(x.size(2), "H");
    p.w = to_int(x.size(3), "W");
    p.k = to_int(weight.size(2), "k");
    p.stride = to_int(stride, "stride");
    p.pad = to_int(pad, "pad");
    const int ho = dc_conv_out_size(p.h, p.k, p.stride, p.pad, 1);
    const int wo = dc_conv_out_size(p.w, p.k, p.stride, p.pad, 1);
    TORCH_CHECK(ho >= 1 && wo >= 1, "dwconv2d: empty output");
    const c10::cuda::CUDAGuard guard(x.device());
    at::Tensor y = at::empty({x.size(0), x.size(1), ho, wo}, x.options());
    check_status(dc_dwconv2d_forward(dtype_of(x), &p, x.data_ptr(), weight.data_ptr(), ptr_or_null(bias),
                                     y.data_ptr(), c10::cuda::getCurrentCUDAStream().stream()),
                 "dc_dwconv2d_forward");
    return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "deployconv CUDA kernels (plugins_cpp/kernels) for torch CUDA tensors";
    m.def("ska", &ska_forward, "SKA with the optional LSConv epilogue", py::arg("x"), py::arg("w"),
          py::arg("scale") = py::none(), py::arg("shift") = py::none(), py::arg("residual") = py::none());
    m.def("deform_conv2d", &deform_conv2d_forward, "DCNv2, torchvision semantics", py::arg("input"),
          py::arg("weight"), py::arg("offset"), py::arg("bias"), py::arg("mask"), py::arg("stride_h"),
          py::arg("stride_w"), py::arg("pad_h"), py::arg("pad_w"), py::arg("dil_h"), py::arg("dil_w"));
    m.def("dcnv4", &dcnv4_forward, "DCNv4 core op, NHWC", py::arg("value"), py::arg("offset_mask"),
          py::arg("kernel_h"), py::arg("kernel_w"), py::arg("stride_h"), py::arg("stride_w"), py::arg("pad_h"),
          py::arg("pad_w"), py::arg("dilation_h"), py::arg("dilation_w"), py::arg("group"),
          py::arg("group_channels"), py::arg("offset_scale"), py::arg("remove_center"));
    m.def("dwconv2d", &dwconv2d_forward, "depthwise conv, NCHW, + bias", py::arg("x"), py::arg("weight"),
          py::arg("bias"), py::arg("stride"), py::arg("pad"));
}
