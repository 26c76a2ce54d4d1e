// What the three deployconv plugins share and that has nothing to do with their math: logging without
// throwing, plugin fields read and written the way plugin_table.h describes them, data types, shape checks.
#pragma once

#include "NvInferRuntime.h"
#include "deployconv_kernels.h"
#include "plugin_table.h"

#include <cstdint>
#include <string>
#include <vector>

namespace deployconv
{
namespace trt
{

// The logger TensorRT hands a plugin library through its `setLoggerFinder` entry point (see library.cpp).
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

// Log an error as "<plugin> (<layer>): <message>" through TensorRT's logger, or to stderr when TensorRT gave the
// library none (a library loaded by hand). Never throws: it runs inside noexcept ABI methods.
void logError(table::PluginSpec const& spec, std::string const& layer, std::string const& message) noexcept;

// nvinfer1 data type -> kernel dtype; false for anything the kernels do not take.
bool toKernelDtype(nvinfer1::DataType type, dc_dtype& out) noexcept;

// Whether the table lets this plugin run in `type` (fp32/fp16, bf16 only where the table says so).
bool dtypeAllowed(table::PluginSpec const& spec, nvinfer1::DataType type) noexcept;

// The formats every deployconv plugin takes: LINEAR; the first input picks T from the table's types; inputs the
// table marks fp32 are float32; every other input and the output are T.
bool supportsFormat(table::PluginSpec const& spec, int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
    int32_t nbInputs, int32_t nbOutputs) noexcept;

// Index of the first dimension that does not fit a kernel's int, or -1. Kernel parameters are int.
int32_t firstDimOverInt(nvinfer1::Dims const& dims) noexcept;

// a == b, where -1 (a dimension not known before the shape is fixed) matches anything.
inline bool dimsAgree(int64_t a, int64_t b) noexcept
{
    return a < 0 || b < 0 || a == b;
}

// "(2, 3, -1, 4)": a shape in an error message.
std::string dimsToString(nvinfer1::Dims const& dims);

// Convolution output size along one axis, floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1; -1 while `in` or `k`
// is not known. May be <= 0 for an input too small for the kernel (callers report it).
int64_t convOutSize(int64_t in, int64_t k, int32_t stride, int32_t pad, int32_t dil) noexcept;

// The same as a TensorRT shape expression, so output shapes stay symbolic under dynamic shapes.
nvinfer1::IDimensionExpr const* convOutExpr(nvinfer1::IExprBuilder& b, nvinfer1::IDimensionExpr const& in,
    nvinfer1::IDimensionExpr const& k, int32_t stride, int32_t pad, int32_t dil) noexcept;

// Inputs whose shapes must match, or whose one dimension must equal a number, as an error message.
std::string shapeMismatch(char const* what, nvinfer1::Dims const& dims, std::string const& expected);

// A plugin's fields as the table describes them: parsed from a PluginFieldCollection (the builder's attributes or
// the engine's serialized fields) and handed back for serialization. Everything is int32 or float32 on the wire.
class FieldValues
{
public:
    explicit FieldValues(table::PluginSpec const& spec);

    // Read `fc` (may be null when the plugin has no fields). Every table field must be present once, with its kind
    // (kINT32 for int/ints, kFLOAT32 for float) and element count; unknown fields are refused. On failure returns
    // false and says why in `error`.
    bool parse(nvinfer1::PluginFieldCollection const* fc, std::string& error);

    int32_t getInt(int32_t field) const
    {
        return mInts.at(field).at(0);
    }
    std::vector<int32_t> const& getInts(int32_t field) const
    {
        return mInts.at(field);
    }
    float getFloat(int32_t field) const
    {
        return mFloats.at(field).at(0);
    }

    // The fields as a collection that points into this object (valid while it lives and is not modified).
    nvinfer1::PluginFieldCollection const* collection();

private:
    table::PluginSpec const* mSpec;
    std::vector<std::vector<int32_t>> mInts;
    std::vector<std::vector<float>> mFloats;
    std::vector<std::string> mStrings;
    std::vector<nvinfer1::PluginField> mWire;
    nvinfer1::PluginFieldCollection mCollection{};
};

// The field list a creator advertises (name, type, count), built once from the table.
class FieldNames
{
public:
    explicit FieldNames(table::PluginSpec const& spec);
    nvinfer1::PluginFieldCollection const* collection() const noexcept
    {
        return &mCollection;
    }

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

nvinfer1::PluginFieldType wireType(table::FieldKind kind) noexcept;

} // namespace trt
} // namespace deployconv
