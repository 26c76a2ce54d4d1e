#include "ska_plugin.h"

namespace deployconv
{
namespace trt
{

using namespace nvinfer1;
namespace ska = table::ska;

SkaPlugin* SkaPlugin::create(std::string const& layer, FieldValues fields, std::string& /*error*/)
{
    return new SkaPlugin(spec(), layer, std::move(fields)); // no fields: nothing to validate
}

IPluginV3* SkaPlugin::clone() noexcept
{
    return guarded<IPluginV3*>(mSpec, mLayer, nullptr, [&] { return new SkaPlugin(*this); });
}

int32_t SkaPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] {
        if (!countsOk(nbInputs, nbOutputs) || inputs == nullptr || outputs == nullptr)
        {
            return -1;
        }
        if (inputs[ska::kInX].nbDims != 4)
        {
            error("input 'x' must be 4-D (N, C, H, W)");
            return -1;
        }
        outputs[0] = inputs[ska::kInX]; // y has x's shape
        return 0;
    });
}

std::string SkaPlugin::checkShapes(Dims const* in, int32_t nbInputs) const
{
    Dims const& x = in[ska::kInX];
    Dims const& w = in[ska::kInW];
    if (x.nbDims != 4)
    {
        return shapeMismatch("x", x, "4-D (N, C, H, W)");
    }
    std::string const wExpected = "(N, G, 9, H, W) = (" + std::to_string(x.d[0]) + ", G, 9, " + std::to_string(x.d[2])
        + ", " + std::to_string(x.d[3]) + ")";
    if (w.nbDims != 5 || !dimsAgree(w.d[0], x.d[0]) || !dimsAgree(w.d[2], 9) || !dimsAgree(w.d[3], x.d[2])
        || !dimsAgree(w.d[4], x.d[3]))
    {
        return shapeMismatch("w", w, wExpected + ": one 3x3 kernel per weight group and pixel");
    }
    if (w.d[1] == 0 || (w.d[1] > 0 && x.d[1] >= 0 && x.d[1] % w.d[1] != 0))
    {
        return shapeMismatch("w", w, "G = w.shape[1] dividing C = " + std::to_string(x.d[1]));
    }
    for (int32_t i : {ska::kInScale, ska::kInShift})
    {
        if (nbInputs > i && (in[i].nbDims != 1 || !dimsAgree(in[i].d[0], x.d[1])))
        {
            return shapeMismatch(mSpec.inputNames[i], in[i], "(C,) = (" + std::to_string(x.d[1]) + ",)");
        }
    }
    if (nbInputs > ska::kInResidual)
    {
        Dims const& r = in[ska::kInResidual];
        bool same = r.nbDims == 4;
        for (int32_t k = 0; same && k < 4; ++k)
        {
            same = dimsAgree(r.d[k], x.d[k]);
        }
        if (!same)
        {
            return shapeMismatch("residual", r, "x's shape " + dimsToString(x));
        }
    }
    return "";
}

int32_t SkaPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] { return launch(inputDesc, inputs, outputs, stream); });
}

int32_t SkaPlugin::launch(
    PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs, cudaStream_t stream) const
{
    dc_dtype dtype{};
    if (mNbInputs < mSpec.minInputs || !toKernelDtype(inputDesc[ska::kInX].type, dtype))
    {
        error("enqueue before a valid onShapeChange, or with an unsupported data type");
        return -1;
    }
    Dims const& x = inputDesc[ska::kInX].dims;
    dc_ska_params p{};
    p.n = static_cast<int>(x.d[0]);
    p.c = static_cast<int>(x.d[1]);
    p.h = static_cast<int>(x.d[2]);
    p.w = static_cast<int>(x.d[3]);
    p.groups = static_cast<int>(inputDesc[ska::kInW].dims.d[1]);
    auto const optional = [&](int32_t i) { return mNbInputs > i ? inputs[i] : nullptr; };
    cudaError_t const status = dc_ska_forward(dtype, &p, inputs[ska::kInX], inputs[ska::kInW],
        static_cast<float const*>(optional(ska::kInScale)), static_cast<float const*>(optional(ska::kInShift)),
        optional(ska::kInResidual), outputs[0], stream);
    if (status != cudaSuccess)
    {
        error(std::string("dc_ska_forward failed: ") + cudaGetErrorName(status) + " (" + cudaGetErrorString(status)
            + ")");
        return -1;
    }
    return 0;
}

} // namespace trt
} // namespace deployconv
