"""The YAML config, in three modules imported directly (this package re-exports nothing, so
target kinds can import the leaf without pulling in the model that imports them):

- monitor.config.types: durations, StrictModel, Expect (the leaf: no monitor imports)
- monitor.config.model: Config and its sections, targets typed as the union of kinds
- monitor.config.load: reading, interpolation, problems (ConfigError), config_warnings
"""
