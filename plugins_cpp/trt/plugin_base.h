// The IPluginV3 plumbing every deployconv plugin shares (capabilities, identity from the table, one output of the
// first input's type, format rules, shape checks at build and run time, serialization of the table's fields),
// and the one creator template instantiated per plugin. An op's own file supplies only its math-facing parts:
// field validation, output shapes, shape relations, workspace and enqueue.
#pragma once

#include "plugin_common.h"

#include <exception>
#include <string>
#include <utility>

namespace deployconv
{
namespace trt
{

class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
{
public:
    PluginBase(table::PluginSpec const& spec, std::string layer, FieldValues fields);
    ~PluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

protected:
    // Why the input shapes (dims of -1 are not known yet) do not fit together, or "" when they do.
    virtual std::string checkShapes(nvinfer1::Dims const* inputs, int32_t nbInputs) const = 0;

    // The table's input count range and one output; logs and returns false otherwise.
    bool countsOk(int32_t nbInputs, int32_t nbOutputs) const noexcept;
    // Counts, every dimension within a kernel's int, then checkShapes: 0, or -1 after logging why not.
    int32_t checkAll(nvinfer1::Dims const* dims, int32_t nbInputs, int32_t nbOutputs) const noexcept;
    void error(std::string const& message) const noexcept
    {
        logError(mSpec, mLayer, message);
    }

    table::PluginSpec const& mSpec;
    std::string mLayer;
    FieldValues mFields;
    // Inputs this node has (a prefix of the table's list): enqueue is not told, so configurePlugin (build) and
    // onShapeChange (every execution context, before its first enqueue) record it; clones copy it.
    int32_t mNbInputs{-1};
};

// Run `body` (which returns R) and turn any C++ exception into a logged error and `failure`: nothing may cross
// the TensorRT ABI as an exception.
template <class R, class F>
R guarded(table::PluginSpec const& spec, std::string const& layer, R failure, F&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& e)
    {
        logError(spec, layer, std::string("unexpected exception: ") + e.what());
    }
    catch (...)
    {
        logError(spec, layer, "unexpected exception");
    }
    return failure;
}

// One creator per plugin: `Plugin` provides `static table::PluginSpec const& spec()` and
// `static Plugin* create(std::string const& layer, FieldValues fields, std::string& error)` (nullptr + error when
// the fields are out of range).
template <class Plugin>
class PluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    PluginCreator()
        : mFieldNames(Plugin::spec())
    {
    }

    char const* getPluginName() const noexcept override
    {
        return Plugin::spec().name;
    }
    char const* getPluginVersion() const noexcept override
    {
        return Plugin::spec().version;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return Plugin::spec().pluginNamespace;
    }
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return mFieldNames.collection();
    }

    // The same fields come in at build time (ONNX attributes) and at runtime (getFieldsToSerialize), so both
    // phases parse them alike.
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /*phase*/) noexcept override
    {
        std::string const layer = name == nullptr ? "" : name;
        return guarded<nvinfer1::IPluginV3*>(Plugin::spec(), layer, nullptr, [&]() -> nvinfer1::IPluginV3* {
            FieldValues values(Plugin::spec());
            std::string why;
            if (!values.parse(fc, why))
            {
                logError(Plugin::spec(), layer, "cannot create the plugin: " + why);
                return nullptr;
            }
            Plugin* plugin = Plugin::create(layer, std::move(values), why);
            if (plugin == nullptr)
            {
                logError(Plugin::spec(), layer, "cannot create the plugin: " + why);
            }
            return plugin;
        });
    }

private:
    FieldNames mFieldNames;
};

} // namespace trt
} // namespace deployconv
