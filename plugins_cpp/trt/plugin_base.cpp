#include "plugin_base.h"

#include <vector>

namespace deployconv
{
namespace trt
{

using namespace nvinfer1;

PluginBase::PluginBase(table::PluginSpec const& spec, std::string layer, FieldValues fields)
    : mSpec(spec)
    , mLayer(std::move(layer))
    , mFields(std::move(fields))
{
}

IPluginCapability* PluginBase::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

char const* PluginBase::getPluginName() const noexcept
{
    return mSpec.name;
}

char const* PluginBase::getPluginVersion() const noexcept
{
    return mSpec.version;
}

char const* PluginBase::getPluginNamespace() const noexcept
{
    return mSpec.pluginNamespace;
}

int32_t PluginBase::getNbOutputs() const noexcept
{
    return 1;
}

int32_t PluginBase::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] {
        if (!countsOk(nbInputs, nbOutputs) || outputTypes == nullptr || inputTypes == nullptr)
        {
            return -1;
        }
        if (!dtypeAllowed(mSpec, inputTypes[0]))
        {
            error("input '" + std::string(mSpec.inputNames[0]) + "' has data type "
                + std::to_string(static_cast<int32_t>(inputTypes[0])) + "; this plugin runs in "
                + (mSpec.bf16 ? "float32, float16 or bfloat16" : "float32 or float16"));
            return -1;
        }
        outputTypes[0] = inputTypes[0];
        return 0;
    });
}

bool PluginBase::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return supportsFormat(mSpec, pos, inOut, nbInputs, nbOutputs);
}

int32_t PluginBase::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
    int32_t nbOutputs) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] {
        if (!countsOk(nbInputs, nbOutputs) || in == nullptr)
        {
            return -1;
        }
        std::vector<Dims> dims;
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims.push_back(in[i].desc.dims); // -1 where the profile leaves a dimension open
        }
        mNbInputs = nbInputs;
        return checkAll(dims.data(), nbInputs, nbOutputs);
    });
}

int32_t PluginBase::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] {
        if (!countsOk(nbInputs, nbOutputs) || in == nullptr)
        {
            return -1;
        }
        std::vector<Dims> dims;
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims.push_back(in[i].dims);
        }
        mNbInputs = nbInputs;
        return checkAll(dims.data(), nbInputs, nbOutputs);
    });
}

IPluginV3* PluginBase::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    // No per-context resources: the kernels take TensorRT's workspace and stream, so a copy is all a context needs.
    return clone();
}

PluginFieldCollection const* PluginBase::getFieldsToSerialize() noexcept
{
    return guarded<PluginFieldCollection const*>(mSpec, mLayer, nullptr, [&] { return mFields.collection(); });
}

bool PluginBase::countsOk(int32_t nbInputs, int32_t nbOutputs) const noexcept
{
    if (nbInputs >= mSpec.minInputs && nbInputs <= mSpec.maxInputs && nbOutputs == 1)
    {
        return true;
    }
    return guarded<bool>(mSpec, mLayer, false, [&] {
        error("got " + std::to_string(nbInputs) + " inputs and " + std::to_string(nbOutputs) + " outputs; expected "
            + std::to_string(mSpec.minInputs) + ".." + std::to_string(mSpec.maxInputs)
            + " inputs (a prefix of the table's list) and 1 output");
        return false;
    });
}

int32_t PluginBase::checkAll(Dims const* dims, int32_t nbInputs, int32_t nbOutputs) const noexcept
{
    return guarded<int32_t>(mSpec, mLayer, -1, [&] {
        if (!countsOk(nbInputs, nbOutputs))
        {
            return -1;
        }
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            int32_t const axis = firstDimOverInt(dims[i]);
            if (axis >= 0)
            {
                error("input '" + std::string(mSpec.inputNames[i]) + "' " + dimsToString(dims[i]) + ": dimension "
                    + std::to_string(axis) + " exceeds the kernels' int range");
                return -1;
            }
        }
        std::string const why = checkShapes(dims, nbInputs);
        if (!why.empty())
        {
            error(why);
            return -1;
        }
        return 0;
    });
}

} // namespace trt
} // namespace deployconv
