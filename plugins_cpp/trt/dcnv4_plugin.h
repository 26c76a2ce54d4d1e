// DeployconvDCNv4: the DCNv4 core op (OpenGVLab semantics, deployconv/ops/dcnv4.py). Channels-last data in plain
// LINEAR tensors: value (N, H, W, G*D) and offset_mask (N, Ho, Wo, P) with P = ceil(G*K*3/8)*8 (the kernel derives
// P from the fields, so the plugin requires exactly that); y (N, Ho, Wo, G*D). fp32, fp16 and bf16.
#pragma once

#include "plugin_base.h"

namespace deployconv
{
namespace trt
{

struct DCNv4Attrs
{
    int32_t kernelH, kernelW, strideH, strideW, padH, padW, dilH, dilW, group, groupChannels;
    float offsetScale;
    int32_t removeCenter;

    // K: sampling points per group; P: the packed offset_mask channels the kernel reads.
    int64_t points() const noexcept
    {
        return static_cast<int64_t>(kernelH) * kernelW - removeCenter;
    }
    int64_t packedChannels() const noexcept
    {
        return (group * points() * 3 + 7) / 8 * 8;
    }
};

class DCNv4Plugin final : public PluginBase
{
public:
    static table::PluginSpec const& spec() noexcept
    {
        return table::dcnv4::kSpec;
    }
    static DCNv4Plugin* create(std::string const& layer, FieldValues fields, std::string& error);

    nvinfer1::IPluginV3* clone() noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

protected:
    std::string checkShapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const override;

private:
    DCNv4Plugin(std::string const& layer, FieldValues fields, DCNv4Attrs attrs);
    int32_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        cudaStream_t stream) const;

    DCNv4Attrs mAttrs;
};

using DCNv4PluginCreator = PluginCreator<DCNv4Plugin>;

} // namespace trt
} // namespace deployconv
