// plugin_probe: load libdeployconv_plugins.so the way IPluginRegistry::loadLibrary does (dlopen, setLoggerFinder,
// getCreators) and drive its creators and plugins through their IPluginV3 interfaces, without TensorRT. It checks
// what can be checked on a machine with TensorRT's headers but no libnvinfer or GPU: the creators' names, versions
// and field lists, plugin creation and field validation, serialization round trips, format and data-type rules and
// the shape checks of configurePlugin / onShapeChange. It does not run kernels, getOutputShapes (that needs
// TensorRT's IExprBuilder) or anything inside a TensorRT engine.
//
//   plugin_probe LIB < script        one JSON object per output line
//
// Script lines (whitespace separated):
//   creators                         list every creator with its field names, types and lengths
//   plugin NAME                      start a new case for plugin NAME (clears fields and tensors)
//   field NAME i|f V...              add a field of int32 (i) or float32 (f) values
//   create                           createPlugin(kBUILD); on success round-trips getFieldsToSerialize through
//                                    createPlugin(kRUNTIME) and clone(), comparing the fields
//   in|out TYPE FORMAT D...          add an input / output tensor (nvinfer1::DataType, TensorFormat as ints; -1 dims ok)
//   formats                          supportsFormatCombination for every position
//   configure                        configurePlugin, then onShapeChange with the same tensors
//   types                            getOutputDataTypes from the inputs' types
//   workspace                        getWorkspaceSize with the tensors as min = opt = max
#include "NvInferRuntime.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <iostream>
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

struct Field
{
    std::string name;
    bool isFloat;
    std::vector<int32_t> ints;
    std::vector<float> floats;
};

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
        if (f.isFloat)
        {
            out.emplace_back(f.name.c_str(), f.floats.data(), PluginFieldType::kFLOAT32, int32_t(f.floats.size()));
        }
        else
        {
            out.emplace_back(f.name.c_str(), f.ints.data(), PluginFieldType::kINT32, int32_t(f.ints.size()));
        }
    }
    return out;
}

// The fields of a collection as text, to compare two collections.
std::string describe(PluginFieldCollection const* fc)
{
    std::ostringstream s;
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        s << f.name << ":" << int32_t(f.type) << "[";
        for (int32_t k = 0; k < f.length; ++k)
        {
            if (f.type == PluginFieldType::kFLOAT32)
            {
                s << static_cast<float const*>(f.data)[k] << ",";
            }
            else if (f.type == PluginFieldType::kINT32)
            {
                s << static_cast<int32_t const*>(f.data)[k] << ",";
            }
        }
        s << "];";
    }
    return s.str();
}

// A plugin created from the case's fields, owned here (TensorRT would own plugins it creates itself).
std::unique_ptr<IPluginV3> make(Case const& c, TensorRTPhase phase, PluginFieldCollection const* fc = nullptr)
{
    std::vector<PluginField> fields = wire(c.fields);
    PluginFieldCollection own{int32_t(fields.size()), fields.data()};
    return std::unique_ptr<IPluginV3>(c.creator->createPlugin("probe_layer", fc != nullptr ? fc : &own, phase));
}

std::vector<DynamicPluginTensorDesc> inOut(Case const& c)
{
    std::vector<DynamicPluginTensorDesc> all = c.ins;
    all.insert(all.end(), c.outs.begin(), c.outs.end());
    return all;
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
            std::string name;
            in >> name;
            c = Case{};
            for (int32_t i = 0; i < nb; ++i)
            {
                auto* v3 = static_cast<IPluginCreatorV3One*>(creators[i]);
                if (name == v3->getPluginName())
                {
                    c.creator = v3;
                }
            }
            if (c.creator == nullptr)
            {
                std::cout << "{\"error\":" << quote("no creator named " + name) << "}\n";
            }
        }
        else if (cmd == "field")
        {
            Field f;
            std::string kind;
            in >> f.name >> kind;
            f.isFloat = kind == "f";
            double v;
            while (in >> v)
            {
                f.isFloat ? f.floats.push_back(float(v)) : f.ints.push_back(int32_t(v));
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
                auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
                auto* runtime
                    = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
                PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
                std::string const before = describe(saved);
                auto restored = make(c, TensorRTPhase::kRUNTIME, saved);
                std::unique_ptr<IPluginV3> cloned(restored ? restored->clone() : nullptr);
                std::string after;
                if (cloned)
                {
                    after = describe(static_cast<IPluginV3OneRuntime*>(
                        cloned->getCapabilityInterface(PluginCapabilityType::kRUNTIME))->getFieldsToSerialize());
                }
                std::cout << ",\"name\":" << quote(core->getPluginName()) << ",\"version\":"
                          << quote(core->getPluginVersion()) << ",\"namespace\":" << quote(core->getPluginNamespace())
                          << ",\"interface\":" << quote(plugin->getInterfaceInfo().kind)
                          << ",\"serialized\":" << quote(before) << ",\"roundtrip\":"
                          << (cloned && after == before ? "true" : "false");
            }
            std::cout << "}\n";
        }
        else
        {
            auto plugin = make(c, TensorRTPhase::kBUILD);
            if (!plugin)
            {
                std::cout << "{\"error\":" << quote("createPlugin failed: " + finder.logger.last) << "}\n";
                continue;
            }
            auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
            auto* runtime
                = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
            int32_t const nIn = int32_t(c.ins.size());
            int32_t const nOut = int32_t(c.outs.size());
            std::vector<DynamicPluginTensorDesc> all = inOut(c);
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
                std::vector<PluginTensorDesc> ins, outs;
                for (auto const& d : c.ins)
                {
                    ins.push_back(d.desc);
                }
                for (auto const& d : c.outs)
                {
                    outs.push_back(d.desc);
                }
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
            else
            {
                std::cout << "{\"error\":" << quote("unknown command " + cmd) << "}\n";
            }
        }
        std::cout.flush();
    }
    return 0;
}
