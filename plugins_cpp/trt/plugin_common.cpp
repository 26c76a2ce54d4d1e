#include "plugin_common.h"

#include <atomic>
#include <cstdio>
#include <limits>
#include <sstream>

namespace deployconv
{
namespace trt
{

using namespace nvinfer1;

namespace
{
std::atomic<ILoggerFinder*> gLoggerFinder{nullptr};
} // namespace

void setLoggerFinder(ILoggerFinder* finder) noexcept
{
    gLoggerFinder.store(finder);
}

void logError(table::PluginSpec const& spec, std::string const& layer, std::string const& message) noexcept
{
    try
    {
        std::string const text = std::string(spec.name) + " (" + layer + "): " + message;
        ILoggerFinder* finder = gLoggerFinder.load();
        ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
        if (logger != nullptr)
        {
            logger->log(ILogger::Severity::kERROR, text.c_str());
        }
        else
        {
            std::fprintf(stderr, "[deployconv plugins] error: %s\n", text.c_str());
        }
    }
    catch (...)
    {
        std::fprintf(stderr, "[deployconv plugins] error in %s (message lost: out of memory)\n", spec.name);
    }
}

bool toKernelDtype(DataType type, dc_dtype& out) noexcept
{
    switch (type)
    {
    case DataType::kFLOAT: out = DC_FLOAT32; return true;
    case DataType::kHALF: out = DC_FLOAT16; return true;
    case DataType::kBF16: out = DC_BFLOAT16; return true;
    default: return false;
    }
}

bool dtypeAllowed(table::PluginSpec const& spec, DataType type) noexcept
{
    return (type == DataType::kFLOAT && spec.fp32) || (type == DataType::kHALF && spec.fp16)
        || (type == DataType::kBF16 && spec.bf16);
}

bool supportsFormat(table::PluginSpec const& spec, int32_t pos, DynamicPluginTensorDesc const* inOut,
    int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || pos < 0 || pos >= nbInputs + nbOutputs || nbInputs < 1)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos < nbInputs && pos < spec.maxInputs && spec.inputIsFp32[pos])
    {
        return desc.type == DataType::kFLOAT;
    }
    if (pos == 0)
    {
        return dtypeAllowed(spec, desc.type);
    }
    // Positions before `pos` are already fixed when TensorRT asks: input 0 has chosen T.
    return desc.type == inOut[0].desc.type;
}

int32_t firstDimOverInt(Dims const& dims) noexcept
{
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        if (dims.d[i] > std::numeric_limits<int>::max())
        {
            return i;
        }
    }
    return -1;
}

std::string dimsToString(Dims const& dims)
{
    std::ostringstream s;
    s << "(";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        s << (i ? ", " : "") << dims.d[i];
    }
    s << ")";
    return s.str();
}

int64_t convOutSize(int64_t in, int64_t k, int32_t stride, int32_t pad, int32_t dil) noexcept
{
    if (in < 0 || k < 0)
    {
        return -1;
    }
    int64_t const num = in + 2 * static_cast<int64_t>(pad) - static_cast<int64_t>(dil) * (k - 1) - 1;
    if (num < 0)
    {
        return 0; // the kernel does not fit: no output
    }
    return num / stride + 1;
}

IDimensionExpr const* convOutExpr(
    IExprBuilder& b, IDimensionExpr const& in, IDimensionExpr const& k, int32_t stride, int32_t pad, int32_t dil) noexcept
{
    IDimensionExpr const* one = b.constant(1);
    IDimensionExpr const* span
        = b.operation(DimensionOperation::kSUM, *b.operation(DimensionOperation::kPROD, *b.constant(dil),
                                                    *b.operation(DimensionOperation::kSUB, k, *one)),
            *one); // dil (k - 1) + 1
    IDimensionExpr const* num = b.operation(
        DimensionOperation::kSUB, *b.operation(DimensionOperation::kSUM, in, *b.constant(2 * pad)), *span);
    return b.operation(
        DimensionOperation::kSUM, *b.operation(DimensionOperation::kFLOOR_DIV, *num, *b.constant(stride)), *one);
}

std::string shapeMismatch(char const* what, Dims const& dims, std::string const& expected)
{
    return std::string("input '") + what + "' has shape " + dimsToString(dims) + ", expected " + expected;
}

PluginFieldType wireType(table::FieldKind kind) noexcept
{
    switch (kind)
    {
    case table::FieldKind::kInt:
    case table::FieldKind::kInts: return PluginFieldType::kINT32;
    case table::FieldKind::kFloat: return PluginFieldType::kFLOAT32;
    case table::FieldKind::kString: return PluginFieldType::kCHAR;
    }
    return PluginFieldType::kUNKNOWN;
}

FieldValues::FieldValues(table::PluginSpec const& spec)
    : mSpec(&spec)
    , mInts(spec.nbFields)
    , mFloats(spec.nbFields)
    , mStrings(spec.nbFields)
{
}

bool FieldValues::parse(PluginFieldCollection const* fc, std::string& error)
{
    std::vector<bool> seen(mSpec->nbFields, false);
    int32_t const nb = fc == nullptr ? 0 : fc->nbFields;
    if (nb > 0 && fc->fields == nullptr)
    {
        error = "the field collection has no fields array";
        return false;
    }
    for (int32_t i = 0; i < nb; ++i)
    {
        PluginField const& f = fc->fields[i];
        int32_t index = -1;
        for (int32_t k = 0; k < mSpec->nbFields; ++k)
        {
            if (f.name != nullptr && std::string(f.name) == mSpec->fields[k].name)
            {
                index = k;
            }
        }
        std::string const name = f.name == nullptr ? "<unnamed>" : f.name;
        if (index < 0)
        {
            error = "unknown field '" + name + "'";
            return false;
        }
        table::FieldSpec const& spec = mSpec->fields[index];
        if (seen[index])
        {
            error = "field '" + name + "' given twice";
            return false;
        }
        seen[index] = true;
        if (f.type != wireType(spec.kind))
        {
            error = "field '" + name + "' has PluginFieldType " + std::to_string(static_cast<int32_t>(f.type))
                + ", expected " + std::to_string(static_cast<int32_t>(wireType(spec.kind)))
                + " (int/ints are kINT32, float is kFLOAT32)";
            return false;
        }
        if ((spec.count >= 0 && f.length != spec.count) || f.length < 0 || (f.length > 0 && f.data == nullptr))
        {
            error = "field '" + name + "' has " + std::to_string(f.length) + " elements, expected "
                + std::to_string(spec.count);
            return false;
        }
        switch (spec.kind)
        {
        case table::FieldKind::kInt:
        case table::FieldKind::kInts:
        {
            auto const* p = static_cast<int32_t const*>(f.data);
            mInts[index].assign(p, p + f.length);
            break;
        }
        case table::FieldKind::kFloat:
        {
            auto const* p = static_cast<float const*>(f.data);
            mFloats[index].assign(p, p + f.length);
            break;
        }
        case table::FieldKind::kString:
            mStrings[index].assign(static_cast<char const*>(f.data), static_cast<size_t>(f.length));
            break;
        }
    }
    for (int32_t k = 0; k < mSpec->nbFields; ++k)
    {
        if (!seen[k])
        {
            error = std::string("field '") + mSpec->fields[k].name
                + "' is missing (export the ONNX with deployconv: the node carries every field)";
            return false;
        }
    }
    return true;
}

PluginFieldCollection const* FieldValues::collection()
{
    mWire.clear();
    for (int32_t k = 0; k < mSpec->nbFields; ++k)
    {
        table::FieldSpec const& spec = mSpec->fields[k];
        switch (spec.kind)
        {
        case table::FieldKind::kInt:
        case table::FieldKind::kInts:
            mWire.emplace_back(spec.name, mInts[k].data(), PluginFieldType::kINT32,
                static_cast<int32_t>(mInts[k].size()));
            break;
        case table::FieldKind::kFloat:
            mWire.emplace_back(spec.name, mFloats[k].data(), PluginFieldType::kFLOAT32,
                static_cast<int32_t>(mFloats[k].size()));
            break;
        case table::FieldKind::kString:
            mWire.emplace_back(spec.name, mStrings[k].data(), PluginFieldType::kCHAR,
                static_cast<int32_t>(mStrings[k].size()));
            break;
        }
    }
    mCollection.nbFields = static_cast<int32_t>(mWire.size());
    mCollection.fields = mWire.data();
    return &mCollection;
}

FieldNames::FieldNames(table::PluginSpec const& spec)
{
    for (int32_t k = 0; k < spec.nbFields; ++k)
    {
        table::FieldSpec const& f = spec.fields[k];
        mFields.emplace_back(f.name, nullptr, wireType(f.kind), f.count < 0 ? 0 : f.count);
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

} // namespace trt
} // namespace deployconv
