// plugin_probe: load libdeployconv_plugins.so the way IPluginRegistry::loadLibrary does (dlopen, setLoggerFinder,
// getCreators) and drive its creators and plugins through their IPluginV3 interfaces, without TensorRT: it needs
// TensorRT's headers and the CUDA runtime, never libnvinfer, so it also runs on a GPU machine without TensorRT.
//
// What it checks without a GPU: the creators' names, versions and field lists; plugin creation from exactly the
// PluginFields TensorRT's ONNX parser would build from a node (the caller converts the node's attributes, see
// plugins_cpp/trt/PARSER_FACTS.md); field validation; serialization round trips (values, not only names); format
// and data-type rules; the shape checks of configurePlugin / onShapeChange; getOutputShapes evaluated on concrete
// shapes through ProbeExprBuilder (a test double of TensorRT's IExprBuilder). With a GPU, `enqueue` also runs the
// kernels through the plugin the way an execution context does.
//
//   plugin_probe LIB < script        one JSON object per output line
//
// Script lines (whitespace separated):
//   creators                         every creator with its field names, types and lengths
//   plugin NAME [VERSION NAMESPACE]  start a new case for the creator with that name (and version and namespace,
//                                    matched exactly, as IPluginRegistry::getCreator does; - = empty namespace);
//                                    clears fields and tensors
//   field NAME TYPE V...             add a field; TYPE is a PluginFieldType number (1 kFLOAT32, 2 kFLOAT64,
//                                    5 kINT32, 6 kCHAR with byte values, 10 kINT64) or i (= 5) / f (= 1)
//   create                           createPlugin(kBUILD); on success prints getFieldsToSerialize (values too),
//                                    recreates the plugin from those fields with createPlugin(kRUNTIME), as
//                                    TensorRT does on deserialization, clones it and prints the fields again
//   in|out TYPE FORMAT D...          add an input / output tensor (DataType, TensorFormat as ints; -1 dims ok)
//   formats                          supportsFormatCombination for every position
//   configure                        configurePlugin, then onShapeChange with the same tensors
//   types                            getOutputDataTypes from the inputs' types
//   workspace                        getWorkspaceSize with the tensors as min = opt = max
//   shapes                           getOutputShapes on the inputs' dims (concrete numbers), through ProbeExprBuilder
//   enqueue DIR                      run the plugin on the GPU: DIR/in<i>.bin hold the inputs (raw, the `in` types),
//                                    DIR/out0.bin receives the output (needs a CUDA device)
#include "NvInferRuntime.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace
{

class CapturingLogger : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
        {
            last = msg;
        }
    }
    std::string last;
};

class Finder : public ILoggerFinder
{
public:
    ILogger* findLogger() override
    {
        return &logger;
    }
    CapturingLogger logger;
};

std::string quote(std::string const& s)
{
    std::string out = "\"";
    for (char c : s)
    {
        if (c == '"' || c == '\\')
        {
            out += '\\';
            out += c;
        }
        else if (static_cast<unsigned char>(c) < 0x20)
        {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        }
        else
        {
            out += c;
        }
    }
    return out + "\"";
}

// A field as the script gives it: the raw bytes of `length` elements of `type`.
struct Field
{
    std::string name;
    PluginFieldType type{PluginFieldType::kUNKNOWN};
    int32_t length{0};
    std::vector<unsigned char> bytes;
};

template <class T>
void append(std::vector<unsigned char>& bytes, T value)
{
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, &value, sizeof(T));
    bytes.insert(bytes.end(), raw, raw + sizeof(T));
}

// Values of one field of a collection as a JSON array (numbers; kCHAR as byte values).
std::string values(PluginField const& f)
{
    std::ostringstream s;
    s.precision(9); // enough digits to tell two float32 apart
    s << "[";
    for (int32_t k = 0; f.data != nullptr && k < f.length; ++k)
    {
        s << (k ? "," : "");
        switch (f.type)
        {
        case PluginFieldType::kFLOAT32: s << static_cast<float const*>(f.data)[k]; break;
        case PluginFieldType::kFLOAT64: s << static_cast<double const*>(f.data)[k]; break;
        case PluginFieldType::kINT32: s << static_cast<int32_t const*>(f.data)[k]; break;
        case PluginFieldType::kINT64: s << static_cast<int64_t const*>(f.data)[k]; break;
        case PluginFieldType::kCHAR: s << int32_t(static_cast<unsigned char const*>(f.data)[k]); break;
        default: s << "null"; break;
        }
    }
    return s.str() + "]";
}

// A collection as JSON: [{"name":..., "type": PluginFieldType, "length":..., "values": [...]}, ...].
std::string describe(PluginFieldCollection const* fc)
{
    std::ostringstream s;
    s << "[";
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        s << (i ? "," : "") << "{\"name\":" << quote(f.name == nullptr ? "" : f.name) << ",\"type\":"
          << int32_t(f.type) << ",\"length\":" << f.length << ",\"values\":" << values(f) << "}";
    }
    return s.str() + "]";
}

struct Case
{
    IPluginCreatorV3One* creator{nullptr};
    std::vector<Field> fields;
    std::vector<DynamicPluginTensorDesc> ins;
    std::vector<DynamicPluginTensorDesc> outs;
};

std::vector<PluginField> wire(std::vector<Field> const& fields)
{
    std::vector<PluginField> out;
    for (Field const& f : fields)
    {
        out.emplace_back(f.name.c_str(), f.bytes.empty() ? nullptr : f.bytes.data(), f.type, f.length);
    }
    return out;
}

// A plugin created from the case's fields (or from `fc`), owned here: TensorRT deletes only what it creates itself.
std::unique_ptr<IPluginV3> make(Case const& c, TensorRTPhase phase, PluginFieldCollection const* fc = nullptr)
{
    std::vector<PluginField> fields = wire(c.fields);
    PluginFieldCollection own{int32_t(fields.size()), fields.data()};
    return std::unique_ptr<IPluginV3>(c.creator->createPlugin("probe_layer", fc != nullptr ? fc : &own, phase));
}

template <class I>
I* capability(IPluginV3& plugin, PluginCapabilityType type)
{
    return static_cast<I*>(plugin.getCapabilityInterface(type));
}

std::vector<PluginTensorDesc> descs(std::vector<DynamicPluginTensorDesc> const& tensors)
{
    std::vector<PluginTensorDesc> out;
    for (auto const& d : tensors)
    {
        out.push_back(d.desc);
    }
    return out;
}

// --- ProbeExprBuilder: a TEST DOUBLE of TensorRT's IExprBuilder -------------------------------------------------
// TensorRT hands getOutputShapes symbolic dimension expressions and evaluates them itself. This double evaluates
// every expression to a number at once, so a plugin's output-shape FORMULA can be checked on concrete shapes
// (dynamic batch, odd H and W) against the PyTorch references. It checks our formula, not TensorRT: it implements
// the documented meaning of each DimensionOperation (NvInferRuntime.h), nothing of TensorRT's shape analysis.
// IExprBuilder and IDimensionExpr are thin wrappers that forward to an apiv:: implementation pointer (mImpl);
// the same in the 10.3, 10.16 and 11.1 headers.
class ProbeExpr : public IDimensionExpr
{
public:
    ProbeExpr(int64_t value, bool constant)
        : mImplObj(value, constant)
    {
        mImpl = &mImplObj;
    }
    ~ProbeExpr() noexcept override = default;
    int64_t value() const
    {
        return mImplObj.value;
    }

private:
    struct Impl : public apiv::VDimensionExpr
    {
        Impl(int64_t v, bool c)
            : value(v)
            , constant(c)
        {
        }
        bool isConstant() const override
        {
            return constant;
        }
        int64_t getConstantValue() const override
        {
            return constant ? value : -1; // TensorRT's documented answer for a non-constant expression
        }
        bool isSizeTensor() const override
        {
            return false;
        }
        int64_t value;
        bool constant;
    };
    Impl mImplObj;
};

class ProbeExprBuilder : public IExprBuilder
{
public:
    ProbeExprBuilder()
    {
        mImpl = &mImplObj;
        mImplObj.owner = this;
    }
    ~ProbeExprBuilder() noexcept override = default;

    // An input dimension: a value only known at run time (not a build-time constant).
    ProbeExpr const* input(int64_t value)
    {
        return add(value, false);
    }
    std::string error;

private:
    ProbeExpr const* add(int64_t value, bool constant)
    {
        mExprs.emplace_back(new ProbeExpr(value, constant));
        return mExprs.back().get();
    }

    struct Impl : public apiv::VExprBuilder
    {
        IDimensionExpr const* constant(int64_t value) override
        {
            return owner->add(value, true);
        }
        IDimensionExpr const* operation(
            DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second) override
        {
            int64_t const a = static_cast<ProbeExpr const&>(first).value();
            int64_t const b = static_cast<ProbeExpr const&>(second).value();
            bool const c = first.isConstant() && second.isConstant();
            int64_t r = 0;
            switch (op)
            {
            case DimensionOperation::kSUM: r = a + b; break;
            case DimensionOperation::kPROD: r = a * b; break;
            case DimensionOperation::kMAX: r = a > b ? a : b; break;
            case DimensionOperation::kMIN: r = a < b ? a : b; break;
            case DimensionOperation::kSUB: r = a - b; break;
            case DimensionOperation::kEQUAL: r = a == b ? 1 : 0; break;
            case DimensionOperation::kLESS: r = a < b ? 1 : 0; break;
            case DimensionOperation::kFLOOR_DIV:
            case DimensionOperation::kCEIL_DIV:
                if (b == 0)
                {
                    owner->error = "division by zero in a shape expression";
                    return owner->add(0, c);
                }
                r = a / b;
                if ((a % b != 0) && ((a < 0) != (b < 0)) && op == DimensionOperation::kFLOOR_DIV)
                {
                    r -= 1; // floor, not C++'s truncation
                }
                if ((a % b != 0) && ((a < 0) == (b < 0)) && op == DimensionOperation::kCEIL_DIV)
                {
                    r += 1;
                }
                break;
            }
            return owner->add(r, c);
        }
        IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
        {
            owner->error = "declareSizeTensor: data-dependent shapes are not used by deployconv plugins";
            return nullptr;
        }
        ProbeExprBuilder* owner{nullptr};
    };

    Impl mImplObj;
    std::deque<std::unique_ptr<ProbeExpr>> mExprs;
};

// --- enqueue: what an execution context does, with plain CUDA runtime calls ------------------------------------

class ProbeResourceContext : public IPluginResourceContext
{
public:
    IGpuAllocator* getGpuAllocator() const noexcept override
    {
        return nullptr; // deployconv plugins allocate nothing themselves
    }
    IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return nullptr;
    }
};

size_t elementSize(DataType type)
{
    switch (type)
    {
    case DataType::kFLOAT: return 4;
    case DataType::kHALF:
    case DataType::kBF16: return 2;
    default: return 0;
    }
}

size_t volume(Dims const& d)
{
    size_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        v *= static_cast<size_t>(d.d[i] < 0 ? 0 : d.d[i]);
    }
    return v;
}

struct DeviceBuffers
{
    std::vector<void*> pointers;
    ~DeviceBuffers()
    {
        for (void* p : pointers)
        {
            cudaFree(p);
        }
    }
    void* alloc(size_t bytes, std::string& error)
    {
        void* p = nullptr;
        cudaError_t const rc = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
        if (rc != cudaSuccess)
        {
            error = std::string("cudaMalloc: ") + cudaGetErrorString(rc);
            return nullptr;
        }
        pointers.push_back(p);
        return p;
    }
};

// The order TensorRT calls a V3 plugin (NvInferRuntime.h: IPluginV3OneBuild, IPluginV3OneRuntime and
// IPluginCreatorV3One::createPlugin comments; TensorRT developer guide, "Extending TensorRT with Custom Layers"):
//   build:   createPlugin(kBUILD) -> getOutputDataTypes / getOutputShapes / supportsFormatCombination ->
//            configurePlugin -> getWorkspaceSize -> getFieldsToSerialize
//   runtime: createPlugin(kRUNTIME, serialized fields) -> attachToContext (a clone per execution context) ->
//            onShapeChange (on that clone, before the first enqueueV3 with these shapes) -> enqueue.
std::string runEnqueue(Case const& c, std::string const& dir, CapturingLogger& logger)
{
    std::ostringstream out;
    auto fail = [&](std::string const& step, std::string const& why) {
        return "{\"ok\":false,\"step\":" + quote(step) + ",\"error\":" + quote(why) + ",\"log\":" + quote(logger.last)
            + "}";
    };
    int32_t const nIn = int32_t(c.ins.size());
    int32_t const nOut = int32_t(c.outs.size());
    int device = 0;
    if (cudaGetDeviceCount(&device) != cudaSuccess || device == 0)
    {
        return fail("cuda", "no CUDA device");
    }
    auto built = make(c, TensorRTPhase::kBUILD);
    if (!built)
    {
        return fail("createPlugin(kBUILD)", "returned null");
    }
    auto* build = capability<IPluginV3OneBuild>(*built, PluginCapabilityType::kBUILD);
    std::vector<DataType> inTypes;
    for (auto const& d : c.ins)
    {
        inTypes.push_back(d.desc.type);
    }
    DataType outType{};
    if (build->getOutputDataTypes(&outType, 1, inTypes.data(), nIn) != 0 || outType != c.outs.at(0).desc.type)
    {
        return fail("getOutputDataTypes", "failed or disagrees with the output tensor's type");
    }
    std::vector<DynamicPluginTensorDesc> all = c.ins;
    all.insert(all.end(), c.outs.begin(), c.outs.end());
    for (int32_t pos = 0; pos < nIn + nOut; ++pos)
    {
        if (!build->supportsFormatCombination(pos, all.data(), nIn, nOut))
        {
            return fail("supportsFormatCombination", "position " + std::to_string(pos) + " refused");
        }
    }
    if (build->configurePlugin(c.ins.data(), nIn, c.outs.data(), nOut) != 0)
    {
        return fail("configurePlugin", "non-zero");
    }
    size_t const workspaceBytes = build->getWorkspaceSize(c.ins.data(), nIn, c.outs.data(), nOut);
    PluginFieldCollection const* saved
        = capability<IPluginV3OneRuntime>(*built, PluginCapabilityType::kRUNTIME)->getFieldsToSerialize();
    auto runtimePlugin = make(c, TensorRTPhase::kRUNTIME, saved);
    if (!runtimePlugin)
    {
        return fail("createPlugin(kRUNTIME)", "returned null");
    }
    ProbeResourceContext context;
    std::unique_ptr<IPluginV3> attached(
        capability<IPluginV3OneRuntime>(*runtimePlugin, PluginCapabilityType::kRUNTIME)->attachToContext(&context));
    if (!attached)
    {
        return fail("attachToContext", "returned null");
    }
    auto* runtime = capability<IPluginV3OneRuntime>(*attached, PluginCapabilityType::kRUNTIME);
    std::vector<PluginTensorDesc> ins = descs(c.ins);
    std::vector<PluginTensorDesc> outs = descs(c.outs);
    if (runtime->onShapeChange(ins.data(), nIn, outs.data(), nOut) != 0)
    {
        return fail("onShapeChange", "non-zero");
    }

    DeviceBuffers buffers;
    std::string error;
    std::vector<void const*> inPtrs;
    for (int32_t i = 0; i < nIn; ++i)
    {
        size_t const bytes = volume(ins[i].dims) * elementSize(ins[i].type);
        std::ifstream f(dir + "/in" + std::to_string(i) + ".bin", std::ios::binary);
        std::vector<char> host((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (!f.good() && !f.eof())
        {
            return fail("read", "cannot read " + dir + "/in" + std::to_string(i) + ".bin");
        }
        if (host.size() != bytes)
        {
            return fail("read", "in" + std::to_string(i) + ".bin has " + std::to_string(host.size())
                    + " bytes, the tensor needs " + std::to_string(bytes));
        }
        void* d = buffers.alloc(bytes, error);
        if (d == nullptr || cudaMemcpy(d, host.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        {
            return fail("cudaMemcpy H2D", error);
        }
        inPtrs.push_back(d);
    }
    size_t const outBytes = volume(outs[0].dims) * elementSize(outs[0].type);
    void* outPtr = buffers.alloc(outBytes, error);
    void* workspace = buffers.alloc(workspaceBytes, error);
    if (outPtr == nullptr || workspace == nullptr || cudaMemset(outPtr, 0xFF, outBytes) != cudaSuccess)
    {
        return fail("cudaMalloc", error); // 0xFF bytes: NaN in every float type, so an unwritten element shows
    }
    cudaStream_t stream = nullptr;
    if (cudaStreamCreate(&stream) != cudaSuccess)
    {
        return fail("cudaStreamCreate", "failed");
    }
    void* outs0[] = {outPtr};
    int32_t const rc = runtime->enqueue(ins.data(), outs.data(), inPtrs.data(), outs0, workspace, stream);
    cudaError_t const sync = cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    if (rc != 0 || sync != cudaSuccess)
    {
        return fail("enqueue", "rc " + std::to_string(rc) + ", stream: " + cudaGetErrorString(sync));
    }
    std::vector<char> host(outBytes);
    if (cudaMemcpy(host.data(), outPtr, outBytes, cudaMemcpyDeviceToHost) != cudaSuccess)
    {
        return fail("cudaMemcpy D2H", "failed");
    }
    std::ofstream f(dir + "/out0.bin", std::ios::binary);
    f.write(host.data(), std::streamsize(host.size()));
    if (!f.good())
    {
        return fail("write", "cannot write " + dir + "/out0.bin");
    }
    out << "{\"ok\":true,\"workspace\":" << workspaceBytes << ",\"output_bytes\":" << outBytes << ",\"log\":"
        << quote(logger.last) << "}";
    return out.str();
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2)
    {
        std::cerr << "usage: plugin_probe LIB < script\n";
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::cerr << "dlopen failed: " << dlerror() << "\n";
        return 3;
    }
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    auto setFinder = reinterpret_cast<SetLoggerFinder>(dlsym(lib, "setLoggerFinder"));
    if (getCreators == nullptr || setFinder == nullptr)
    {
        std::cerr << "missing entry point: getCreators " << (getCreators != nullptr) << ", setLoggerFinder "
                  << (setFinder != nullptr) << "\n";
        return 4;
    }
    static Finder finder;
    setFinder(&finder);
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = getCreators(nb);

    Case c;
    std::string line;
    while (std::getline(std::cin, line))
    {
        std::istringstream in(line);
        std::string cmd;
        if (!(in >> cmd))
        {
            continue;
        }
        finder.logger.last.clear();
        if (cmd == "creators")
        {
            for (int32_t i = 0; i < nb; ++i)
            {
                InterfaceInfo const info = creators[i]->getInterfaceInfo();
                auto* v3 = static_cast<IPluginCreatorV3One*>(creators[i]);
                std::cout << "{\"kind\":" << quote(info.kind) << ",\"name\":" << quote(v3->getPluginName())
                          << ",\"version\":" << quote(v3->getPluginVersion())
                          << ",\"namespace\":" << quote(v3->getPluginNamespace()) << ",\"fields\":[";
                PluginFieldCollection const* fc = v3->getFieldNames();
                for (int32_t k = 0; k < fc->nbFields; ++k)
                {
                    std::cout << (k ? "," : "") << "{\"name\":" << quote(fc->fields[k].name)
                              << ",\"type\":" << int32_t(fc->fields[k].type) << ",\"length\":" << fc->fields[k].length
                              << "}";
                }
                std::cout << "]}\n";
            }
        }
        else if (cmd == "plugin")
        {
            std::string name, version, nspace;
            in >> name;
            bool const exact = bool(in >> version >> nspace);
            if (nspace == "-")
            {
                nspace.clear(); // the empty namespace, which a script cannot spell
            }
            c = Case{};
            for (int32_t i = 0; i < nb; ++i)
            {
                auto* v3 = static_cast<IPluginCreatorV3One*>(creators[i]);
                if (name == v3->getPluginName()
                    && (!exact || (version == v3->getPluginVersion() && nspace == v3->getPluginNamespace())))
                {
                    c.creator = v3;
                }
            }
            if (c.creator == nullptr)
            {
                std::cout << "{\"error\":"
                          << quote("no creator named " + name + (exact ? " version " + version + " namespace " + nspace : ""))
                          << "}\n";
            }
        }
        else if (cmd == "field")
        {
            Field f;
            std::string kind;
            in >> f.name >> kind;
            int32_t const type = kind == "i" ? 5 : kind == "f" ? 1 : std::atoi(kind.c_str());
            f.type = PluginFieldType(type);
            std::string token;
            while (in >> token)
            {
                switch (f.type)
                {
                case PluginFieldType::kFLOAT32: append(f.bytes, std::stof(token)); break;
                case PluginFieldType::kFLOAT64: append(f.bytes, std::stod(token)); break;
                case PluginFieldType::kINT32: append(f.bytes, int32_t(std::stol(token))); break;
                case PluginFieldType::kINT64: append(f.bytes, int64_t(std::stoll(token))); break;
                case PluginFieldType::kCHAR: f.bytes.push_back(static_cast<unsigned char>(std::stoi(token))); break;
                default: break;
                }
                ++f.length;
            }
            c.fields.push_back(f);
        }
        else if (cmd == "in" || cmd == "out")
        {
            int32_t type, format;
            in >> type >> format;
            DynamicPluginTensorDesc d{};
            d.desc.type = DataType(type);
            d.desc.format = TensorFormat(format);
            d.desc.dims.nbDims = 0;
            int64_t v;
            while (in >> v)
            {
                d.desc.dims.d[d.desc.dims.nbDims++] = v;
            }
            d.min = d.opt = d.max = d.desc.dims;
            (cmd == "in" ? c.ins : c.outs).push_back(d);
        }
        else if (c.creator == nullptr)
        {
            std::cout << "{\"error\":\"no plugin selected\"}\n";
        }
        else if (cmd == "create")
        {
            auto plugin = make(c, TensorRTPhase::kBUILD);
            std::cout << "{\"ok\":" << (plugin ? "true" : "false") << ",\"log\":" << quote(finder.logger.last);
            if (plugin)
            {
                auto* core = capability<IPluginV3OneCore>(*plugin, PluginCapabilityType::kCORE);
                auto* runtime = capability<IPluginV3OneRuntime>(*plugin, PluginCapabilityType::kRUNTIME);
                PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
                std::string const before = describe(saved);
                // Deserialization: TensorRT passes exactly the serialized collection to createPlugin(kRUNTIME).
                auto restored = make(c, TensorRTPhase::kRUNTIME, saved);
                std::unique_ptr<IPluginV3> cloned(restored ? restored->clone() : nullptr);
                std::string after = "null";
                if (cloned)
                {
                    after = describe(capability<IPluginV3OneRuntime>(*cloned, PluginCapabilityType::kRUNTIME)
                                         ->getFieldsToSerialize());
                }
                std::cout << ",\"name\":" << quote(core->getPluginName()) << ",\"version\":"
                          << quote(core->getPluginVersion()) << ",\"namespace\":" << quote(core->getPluginNamespace())
                          << ",\"interface\":" << quote(plugin->getInterfaceInfo().kind) << ",\"serialized\":" << before
                          << ",\"restored\":" << after << ",\"roundtrip\":" << (after == before ? "true" : "false");
            }
            std::cout << "}\n";
        }
        else if (cmd == "enqueue")
        {
            std::string dir;
            in >> dir;
            std::cout << runEnqueue(c, dir, finder.logger) << "\n";
        }
        else
        {
            auto plugin = make(c, TensorRTPhase::kBUILD);
            if (!plugin)
            {
                std::cout << "{\"error\":" << quote("createPlugin failed: " + finder.logger.last) << "}\n";
                continue;
            }
            auto* build = capability<IPluginV3OneBuild>(*plugin, PluginCapabilityType::kBUILD);
            auto* runtime = capability<IPluginV3OneRuntime>(*plugin, PluginCapabilityType::kRUNTIME);
            int32_t const nIn = int32_t(c.ins.size());
            int32_t const nOut = int32_t(c.outs.size());
            std::vector<DynamicPluginTensorDesc> all = c.ins;
            all.insert(all.end(), c.outs.begin(), c.outs.end());
            if (cmd == "formats")
            {
                std::cout << "{\"formats\":[";
                for (int32_t pos = 0; pos < nIn + nOut; ++pos)
                {
                    std::cout << (pos ? "," : "")
                              << (build->supportsFormatCombination(pos, all.data(), nIn, nOut) ? "true" : "false");
                }
                std::cout << "]}\n";
            }
            else if (cmd == "configure")
            {
                int32_t const built = build->configurePlugin(c.ins.data(), nIn, c.outs.data(), nOut);
                std::string const buildLog = finder.logger.last;
                finder.logger.last.clear();
                std::vector<PluginTensorDesc> ins = descs(c.ins);
                std::vector<PluginTensorDesc> outs = descs(c.outs);
                int32_t const run = runtime->onShapeChange(ins.data(), nIn, outs.data(), nOut);
                std::cout << "{\"configure\":" << built << ",\"configure_log\":" << quote(buildLog)
                          << ",\"shape_change\":" << run << ",\"shape_change_log\":" << quote(finder.logger.last)
                          << "}\n";
            }
            else if (cmd == "types")
            {
                std::vector<DataType> types;
                for (auto const& d : c.ins)
                {
                    types.push_back(d.desc.type);
                }
                DataType out = DataType::kINT8;
                int32_t const rc = build->getOutputDataTypes(&out, 1, types.data(), nIn);
                std::cout << "{\"rc\":" << rc << ",\"type\":" << int32_t(out) << ",\"log\":" << quote(finder.logger.last)
                          << "}\n";
            }
            else if (cmd == "workspace")
            {
                std::cout << "{\"workspace\":" << build->getWorkspaceSize(c.ins.data(), nIn, c.outs.data(), nOut)
                          << "}\n";
            }
            else if (cmd == "shapes")
            {
                ProbeExprBuilder builder;
                std::vector<DimsExprs> inputs(c.ins.size());
                for (size_t i = 0; i < c.ins.size(); ++i)
                {
                    inputs[i].nbDims = c.ins[i].desc.dims.nbDims;
                    for (int32_t k = 0; k < inputs[i].nbDims; ++k)
                    {
                        inputs[i].d[k] = builder.input(c.ins[i].desc.dims.d[k]);
                    }
                }
                DimsExprs output{};
                int32_t const rc = build->getOutputShapes(inputs.data(), nIn, nullptr, 0, &output, 1, builder);
                std::cout << "{\"rc\":" << rc << ",\"dims\":[";
                for (int32_t k = 0; rc == 0 && k < output.nbDims; ++k)
                {
                    std::cout << (k ? "," : "")
                              << (output.d[k] == nullptr ? -1 : static_cast<ProbeExpr const*>(output.d[k])->value());
                }
                std::cout << "],\"error\":" << quote(builder.error) << ",\"log\":" << quote(finder.logger.last)
                          << "}\n";
            }
            else
            {
                std::cout << "{\"error\":" << quote("unknown command " + cmd) << "}\n";
            }
        }
        std::cout.flush();
    }
    return 0;
}
