#include "deform_conv2d_plugin.h"

namespace deployconv
{
namespace trt
{

using namespace nvinfer1;
namespace dc = table::deform_conv2d;

DeformConv2dPlugin* DeformConv2dPlugin::create(std::string const& layer, FieldValues fields, std::string& error)
{
    std::vector<int32_t> const& s = fields.getInts(dc::kFieldStrides);
    std::vector<int32_t> const& p = fields.getInts(dc::kFieldPads);
    std::vector<int32_t> const& d = fields.getInts(dc::kFieldDilations);
    DeformConv2dAttrs const a{s[0], s[1], p[0], p[1], d[0], d[1], fields.getInt(dc::kFieldGroup),
        fields.getInt(dc::kFieldOffsetGroup)};
    if (a.strideH < 1 || a.strideW < 1 || a.dilH < 1 || a.dilW < 1 || a.padH < 0 || a.padW < 0)
    {
        error = "strides and dilations must be >= 1 and pads >= 0";
        return nullptr;
    }
    if (p[2] != p[0] || p[3] != p[1])
    {
        error = "pads must be symmetric (begin_h, begin_w, end_h, end_w) with end == begin, got ["
            + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ", " + std::to_string(p[2]) + ", "
            + std::to_string(p[3]) + "]";
        return nullptr;
    }
    if (a.group < 1 || a.offsetGroup < 1)
    {
        error = "group and offset_group must be >= 1";
        return nullptr;
    }
    return new DeformConv2dPlugin(layer, std::move(fields), a);
}

DeformConv2dPlugin::DeformConv2dPlugin(std::string const& layer, FieldValues fields, DeformConv2dAttrs attrs)
    : PluginBase(spec(), layer, std::move(fields))
    , mAttrs(attrs)
{
}

IPluginV3* DeformConv2dPlugin::clone() noexcept
{
    return guarded<IPluginV3*>(mSpec, mLayer, nullptr, [&] { return new DeformConv2dPlugin(*this); });
}

int32_t DeformConv2dPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] {
        if (!countsOk(nbInputs, nbOutputs) || inputs == nullptr || outputs == nullptr)
        {
            return -1;
        }
        DimsExprs const& x = inputs[dc::kInX];
        DimsExprs const& w = inputs[dc::kInWeight];
        if (x.nbDims != 4 || w.nbDims != 4)
        {
            error("x must be 4-D (N, Cin, H, W) and weight 4-D (Cout, Cin/group, kh, kw)");
            return -1;
        }
        outputs[0].nbDims = 4;
        outputs[0].d[0] = x.d[0];
        outputs[0].d[1] = w.d[0];
        outputs[0].d[2] = convOutExpr(exprBuilder, *x.d[2], *w.d[2], mAttrs.strideH, mAttrs.padH, mAttrs.dilH);
        outputs[0].d[3] = convOutExpr(exprBuilder, *x.d[3], *w.d[3], mAttrs.strideW, mAttrs.padW, mAttrs.dilW);
        return 0;
    });
}

std::string DeformConv2dPlugin::checkShapes(Dims const* in, int32_t nbInputs) const
{
    Dims const& x = in[dc::kInX];
    Dims const& w = in[dc::kInWeight];
    Dims const& off = in[dc::kInOffset];
    if (x.nbDims != 4)
    {
        return shapeMismatch("x", x, "4-D (N, Cin, H, W)");
    }
    int64_t const g = mAttrs.group;
    int64_t const og = mAttrs.offsetGroup;
    if (w.nbDims != 4 || (w.d[1] >= 0 && !dimsAgree(x.d[1], w.d[1] * g)) || (w.d[0] >= 0 && w.d[0] % g != 0))
    {
        return shapeMismatch("weight", w,
            "(Cout, Cin/group, kh, kw) with Cin = " + std::to_string(x.d[1]) + ", group = " + std::to_string(g)
                + " dividing Cout");
    }
    if (x.d[1] >= 0 && x.d[1] % og != 0)
    {
        return shapeMismatch("x", x, "Cin divisible by offset_group = " + std::to_string(og));
    }
    int64_t const kk = (w.d[2] >= 0 && w.d[3] >= 0) ? w.d[2] * w.d[3] : -1;
    int64_t const ho = convOutSize(x.d[2], w.d[2], mAttrs.strideH, mAttrs.padH, mAttrs.dilH);
    int64_t const wo = convOutSize(x.d[3], w.d[3], mAttrs.strideW, mAttrs.padW, mAttrs.dilW);
    if (ho == 0 || wo == 0)
    {
        return shapeMismatch("x", x, "an image at least as large as the dilated kernel");
    }
    std::string const outHW = "Ho = " + std::to_string(ho) + ", Wo = " + std::to_string(wo);
    if (off.nbDims != 4 || !dimsAgree(off.d[0], x.d[0]) || (kk >= 0 && !dimsAgree(off.d[1], 2 * og * kk))
        || !dimsAgree(off.d[2], ho) || !dimsAgree(off.d[3], wo))
    {
        return shapeMismatch("offset", off, "(N, 2*offset_group*kh*kw, Ho, Wo) with " + outHW);
    }
    if (nbInputs > dc::kInBias && (in[dc::kInBias].nbDims != 1 || !dimsAgree(in[dc::kInBias].d[0], w.d[0])))
    {
        return shapeMismatch("bias", in[dc::kInBias], "(Cout,) = (" + std::to_string(w.d[0]) + ",)");
    }
    if (nbInputs > dc::kInMask)
    {
        Dims const& m = in[dc::kInMask];
        if (m.nbDims != 4 || !dimsAgree(m.d[0], x.d[0]) || (kk >= 0 && !dimsAgree(m.d[1], og * kk))
            || !dimsAgree(m.d[2], ho) || !dimsAgree(m.d[3], wo))
        {
            return shapeMismatch("mask", m, "(N, offset_group*kh*kw, Ho, Wo) with " + outHW);
        }
    }
    return "";
}

dc_deform_conv2d_params DeformConv2dPlugin::params(Dims const& x, Dims const& w) const noexcept
{
    dc_deform_conv2d_params p{};
    p.n = static_cast<int>(x.d[0]);
    p.c_in = static_cast<int>(x.d[1]);
    p.h = static_cast<int>(x.d[2]);
    p.w = static_cast<int>(x.d[3]);
    p.c_out = static_cast<int>(w.d[0]);
    p.kh = static_cast<int>(w.d[2]);
    p.kw = static_cast<int>(w.d[3]);
    p.stride_h = mAttrs.strideH;
    p.stride_w = mAttrs.strideW;
    p.pad_h = mAttrs.padH;
    p.pad_w = mAttrs.padW;
    p.dil_h = mAttrs.dilH;
    p.dil_w = mAttrs.dilW;
    p.groups = mAttrs.group;
    p.offset_groups = mAttrs.offsetGroup;
    return p;
}

size_t DeformConv2dPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t nbOutputs) const noexcept
{
    return guarded<size_t>(mSpec, mLayer, 0, [&]() -> size_t {
        dc_dtype dtype{};
        if (!countsOk(nbInputs, nbOutputs) || inputs == nullptr || !toKernelDtype(inputs[dc::kInX].desc.type, dtype))
        {
            return 0;
        }
        // The largest shapes of the profile need the most scratch; enqueue asks for its own shapes' amount.
        dc_deform_conv2d_params const p = params(inputs[dc::kInX].max, inputs[dc::kInWeight].max);
        return dc_deform_conv2d_workspace_size(dtype, &p);
    });
}

int32_t DeformConv2dPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] { return launch(inputDesc, inputs, outputs, workspace, stream); });
}

int32_t DeformConv2dPlugin::launch(PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) const
{
    dc_dtype dtype{};
    if (mNbInputs < mSpec.minInputs || !toKernelDtype(inputDesc[dc::kInX].type, dtype))
    {
        error("enqueue before a valid onShapeChange, or with an unsupported data type");
        return -1;
    }
    dc_deform_conv2d_params const p = params(inputDesc[dc::kInX].dims, inputDesc[dc::kInWeight].dims);
    size_t const workspaceBytes = dc_deform_conv2d_workspace_size(dtype, &p);
    auto const optional = [&](int32_t i) { return mNbInputs > i ? inputs[i] : nullptr; };
    cudaError_t const status = dc_deform_conv2d_forward(dtype, &p, inputs[dc::kInX], inputs[dc::kInWeight],
        inputs[dc::kInOffset], optional(dc::kInMask), optional(dc::kInBias), outputs[0], workspace, workspaceBytes,
        stream);
    if (status != cudaSuccess)
    {
        error(std::string("dc_deform_conv2d_forward failed: ") + cudaGetErrorName(status) + " ("
            + cudaGetErrorString(status) + ")");
        return -1;
    }
    return 0;
}

} // namespace trt
} // namespace deployconv
