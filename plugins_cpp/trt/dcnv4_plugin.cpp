#include "dcnv4_plugin.h"

#include <cmath>

namespace deployconv
{
namespace trt
{

using namespace nvinfer1;
namespace d4 = table::dcnv4;

DCNv4Plugin* DCNv4Plugin::create(std::string const& layer, FieldValues fields, std::string& error)
{
    std::vector<int32_t> const& k = fields.getInts(d4::kFieldKernelShape);
    std::vector<int32_t> const& s = fields.getInts(d4::kFieldStrides);
    std::vector<int32_t> const& p = fields.getInts(d4::kFieldPads);
    std::vector<int32_t> const& d = fields.getInts(d4::kFieldDilations);
    DCNv4Attrs const a{k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], fields.getInt(d4::kFieldGroup),
        fields.getInt(d4::kFieldGroupChannels), fields.getFloat(d4::kFieldOffsetScale),
        fields.getInt(d4::kFieldRemoveCenter)};
    if (a.kernelH < 1 || a.kernelW < 1 || a.strideH < 1 || a.strideW < 1 || a.dilH < 1 || a.dilW < 1 || a.padH < 0
        || a.padW < 0)
    {
        error = "kernel_shape, strides and dilations must be >= 1 and pads >= 0";
        return nullptr;
    }
    if (p[2] != p[0] || p[3] != p[1])
    {
        error = "pads must be symmetric [pad_h, pad_w, pad_h, pad_w]";
        return nullptr;
    }
    if (a.group < 1 || a.groupChannels < 1 || (a.removeCenter != 0 && a.removeCenter != 1) || a.points() < 1
        || !std::isfinite(a.offsetScale))
    {
        error = "group and group_channels must be >= 1, remove_center 0 or 1 (leaving at least one point), "
                "offset_scale finite";
        return nullptr;
    }
    return new DCNv4Plugin(layer, std::move(fields), a);
}

DCNv4Plugin::DCNv4Plugin(std::string const& layer, FieldValues fields, DCNv4Attrs attrs)
    : PluginBase(spec(), layer, std::move(fields))
    , mAttrs(attrs)
{
}

IPluginV3* DCNv4Plugin::clone() noexcept
{
    return guarded<IPluginV3*>(mSpec, mLayer, nullptr, [&] { return new DCNv4Plugin(*this); });
}

int32_t DCNv4Plugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] {
        if (!countsOk(nbInputs, nbOutputs) || inputs == nullptr || outputs == nullptr)
        {
            return -1;
        }
        DimsExprs const& v = inputs[d4::kInValue];
        if (v.nbDims != 4)
        {
            error("value must be 4-D channels-last (N, H, W, group*group_channels)");
            return -1;
        }
        outputs[0].nbDims = 4;
        outputs[0].d[0] = v.d[0];
        outputs[0].d[1]
            = convOutExpr(exprBuilder, *v.d[1], *exprBuilder.constant(mAttrs.kernelH), mAttrs.strideH, mAttrs.padH,
                mAttrs.dilH);
        outputs[0].d[2]
            = convOutExpr(exprBuilder, *v.d[2], *exprBuilder.constant(mAttrs.kernelW), mAttrs.strideW, mAttrs.padW,
                mAttrs.dilW);
        outputs[0].d[3] = v.d[3];
        return 0;
    });
}

std::string DCNv4Plugin::checkShapes(Dims const* in, int32_t /*nbInputs*/) const
{
    Dims const& v = in[d4::kInValue];
    Dims const& om = in[d4::kInOffsetMask];
    int64_t const channels = static_cast<int64_t>(mAttrs.group) * mAttrs.groupChannels;
    if (v.nbDims != 4 || !dimsAgree(v.d[3], channels))
    {
        return shapeMismatch("value", v, "(N, H, W, group*group_channels = " + std::to_string(channels) + ")");
    }
    int64_t const ho = convOutSize(v.d[1], mAttrs.kernelH, mAttrs.strideH, mAttrs.padH, mAttrs.dilH);
    int64_t const wo = convOutSize(v.d[2], mAttrs.kernelW, mAttrs.strideW, mAttrs.padW, mAttrs.dilW);
    if (ho == 0 || wo == 0)
    {
        return shapeMismatch("value", v, "an image at least as large as the dilated kernel");
    }
    int64_t const packed = mAttrs.packedChannels();
    if (om.nbDims != 4 || !dimsAgree(om.d[0], v.d[0]) || !dimsAgree(om.d[1], ho) || !dimsAgree(om.d[2], wo)
        || !dimsAgree(om.d[3], packed))
    {
        return shapeMismatch("offset_mask", om,
            "(N, Ho, Wo, P) = (" + std::to_string(v.d[0]) + ", " + std::to_string(ho) + ", " + std::to_string(wo)
                + ", " + std::to_string(packed) + "): P = ceil(group*K*3/8)*8, as the official module pads it");
    }
    return "";
}

int32_t DCNv4Plugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] { return launch(inputDesc, inputs, outputs, stream); });
}

int32_t DCNv4Plugin::launch(
    PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs, cudaStream_t stream) const
{
    dc_dtype dtype{};
    if (mNbInputs < mSpec.minInputs || !toKernelDtype(inputDesc[d4::kInValue].type, dtype))
    {
        error("enqueue before a valid onShapeChange, or with an unsupported data type");
        return -1;
    }
    Dims const& v = inputDesc[d4::kInValue].dims;
    dc_dcnv4_params p{};
    p.n = static_cast<int>(v.d[0]);
    p.h = static_cast<int>(v.d[1]);
    p.w = static_cast<int>(v.d[2]);
    p.group = mAttrs.group;
    p.group_channels = mAttrs.groupChannels;
    p.kh = mAttrs.kernelH;
    p.kw = mAttrs.kernelW;
    p.stride_h = mAttrs.strideH;
    p.stride_w = mAttrs.strideW;
    p.pad_h = mAttrs.padH;
    p.pad_w = mAttrs.padW;
    p.dil_h = mAttrs.dilH;
    p.dil_w = mAttrs.dilW;
    p.offset_scale = mAttrs.offsetScale;
    p.remove_center = mAttrs.removeCenter;
    cudaError_t const status
        = dc_dcnv4_forward(dtype, &p, inputs[d4::kInValue], inputs[d4::kInOffsetMask], outputs[0], stream);
    if (status != cudaSuccess)
    {
        error(std::string("dc_dcnv4_forward failed: ") + cudaGetErrorName(status) + " (" + cudaGetErrorString(status)
            + ")");
        return -1;
    }
    return 0;
}

} // namespace trt
} // namespace deployconv
