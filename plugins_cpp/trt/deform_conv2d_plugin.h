// DeployconvDeformConv2d: modulated deformable conv (DCNv2) with torchvision / ONNX DeformConv semantics
// (deployconv/ops/deform_conv.py). Inputs in ONNX DeformConv's order: x (N, Cin, H, W), weight (Cout, Cin/group,
// kh, kw), offset (N, 2*offset_group*kh*kw, Ho, Wo), then optionally bias (Cout,) and mask (N, offset_group*kh*kw,
// Ho, Wo): 3 inputs = neither, 4 = bias, 5 = both (the lowering adds a zero bias when only a mask exists).
#pragma once

#include "plugin_base.h"

namespace deployconv
{
namespace trt
{

struct DeformConv2dAttrs
{
    int32_t strideH, strideW, padH, padW, dilH, dilW, group, offsetGroup;
};

class DeformConv2dPlugin final : public PluginBase
{
public:
    static table::PluginSpec const& spec() noexcept
    {
        return table::deform_conv2d::kSpec;
    }
    static DeformConv2dPlugin* create(std::string const& layer, FieldValues fields, std::string& error);

    nvinfer1::IPluginV3* clone() noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

protected:
    std::string checkShapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const override;

private:
    DeformConv2dPlugin(std::string const& layer, FieldValues fields, DeformConv2dAttrs attrs);
    // Kernel parameters for concrete input dims (x, weight).
    dc_deform_conv2d_params params(nvinfer1::Dims const& x, nvinfer1::Dims const& weight) const noexcept;
    int32_t launch(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;

    DeformConv2dAttrs mAttrs;
};

using DeformConv2dPluginCreator = PluginCreator<DeformConv2dPlugin>;

} // namespace trt
} // namespace deployconv
