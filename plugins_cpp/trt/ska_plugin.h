// DeployconvSKA: LSNet's SKA (per-pixel 3x3 depthwise aggregation, deployconv/ops/ska.py) with the optional fused
// LSConv epilogue y = scale[c] * ska(x, w) + shift[c] + residual. Inputs x (N, C, H, W), w (N, G, 9, H, W), then
// optionally scale (C,) fp32, shift (C,) fp32, residual (N, C, H, W): a node carries a prefix of that list.
#pragma once

#include "plugin_base.h"

namespace deployconv
{
namespace trt
{

class SkaPlugin final : public PluginBase
{
public:
    static table::PluginSpec const& spec() noexcept
    {
        return table::ska::kSpec;
    }
    static SkaPlugin* create(std::string const& layer, FieldValues fields, std::string& error);

    nvinfer1::IPluginV3* clone() noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

protected:
    std::string checkShapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const override;

private:
    using PluginBase::PluginBase;
    int32_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        cudaStream_t stream) const;
};

using SkaPluginCreator = PluginCreator<SkaPlugin>;

} // namespace trt
} // namespace deployconv
