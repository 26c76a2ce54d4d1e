// The entry points TensorRT looks for in a plugin shared library that IPluginRegistry::loadLibrary (Python:
// trt.get_plugin_registry().load_library), trtexec --dynamicPlugins or an engine's serialized plugin libraries
// load: `getCreators` (the plugin creators) and `setLoggerFinder` (where plugins send log messages). Both are
// documented in TensorRT 10's trtexec README and exported from the library by exports.map; nothing else is.
// No static registration: that would tie the library to libnvinfer's getPluginRegistry(), and loadLibrary does
// not need it.
#include "dcnv4_plugin.h"
#include "deform_conv2d_plugin.h"
#include "ska_plugin.h"

using namespace nvinfer1;

namespace
{
// Creators live as long as the library; TensorRT only borrows them.
deployconv::trt::SkaPluginCreator gSkaCreator;
deployconv::trt::DeformConv2dPluginCreator gDeformConv2dCreator;
deployconv::trt::DCNv4PluginCreator gDCNv4Creator;

IPluginCreatorInterface* const gCreators[] = {&gSkaCreator, &gDeformConv2dCreator, &gDCNv4Creator};
static_assert(sizeof(gCreators) / sizeof(gCreators[0]) == deployconv::table::kNbPlugins,
    "one creator per plugin of the table (plugin_table.h)");
} // namespace

extern "C" __attribute__((visibility("default"))) void setLoggerFinder(ILoggerFinder* finder)
{
    deployconv::trt::setLoggerFinder(finder);
}

extern "C" __attribute__((visibility("default"))) IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    nbCreators = deployconv::table::kNbPlugins;
    return gCreators;
}
