"""The Python side of plugins_cpp/: the one table of plugin names, versions and attributes."""

from deployconv.plugins.table import PLUGINS, PluginAttr, PluginSpec, plugin_for_op

__all__ = ["PLUGINS", "PluginAttr", "PluginSpec", "plugin_for_op"]
