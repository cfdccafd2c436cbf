from ._resource import ResourceType as ResourceType
from _typeshed import Incomplete
from enum import Enum
from typing import Any

class AlterConfigOpType(Enum):
    """
    Set of incremental operations that can be used with
    incremental alter configs.
    """
    SET = ...
    DELETE = ...
    APPEND = ...
    SUBTRACT = ...

class ConfigSource(Enum):
    """
    Enumerates the different sources of configuration properties.
    Used by ConfigEntry to specify the
    source of configuration properties returned by `describe_configs()`.
    """
    UNKNOWN_CONFIG = ...
    DYNAMIC_TOPIC_CONFIG = ...
    DYNAMIC_BROKER_CONFIG = ...
    DYNAMIC_DEFAULT_BROKER_CONFIG = ...
    STATIC_BROKER_CONFIG = ...
    DEFAULT_CONFIG = ...
    GROUP_CONFIG = ...

class ConfigEntry:
    """
    Represents a configuration property. Returned by describe_configs() for each configuration
    entry of the specified resource.

    This class is typically not user instantiated.
    """
    name: Incomplete
    value: Incomplete
    source: Incomplete
    is_read_only: Incomplete
    is_default: Incomplete
    is_sensitive: Incomplete
    is_synonym: Incomplete
    synonyms: Incomplete
    incremental_operation: Incomplete
    def __init__(self, name: str, value: str | None, source: ConfigSource = ..., is_read_only: bool = False, is_default: bool = False, is_sensitive: bool = False, is_synonym: bool = False, synonyms: dict[str, 'ConfigEntry'] = {}, incremental_operation: AlterConfigOpType | None = None) -> None:
        """
        This class is typically not user instantiated.
        """

class ConfigResource:
    """
    Represents a resource that has configuration, and (optionally)
    a collection of configuration properties for that resource. Used by
    describe_configs() and alter_configs().

    Parameters
    ----------
    restype : `ConfigResource.Type`
       The resource type.
    name : `str`
       The resource name, which depends on the resource type. For RESOURCE_BROKER, the resource name is the broker id.
    set_config : `dict`
        The configuration to set/overwrite. Dictionary of str, str.
    """
    Type = ResourceType
    restype: Incomplete
    restype_int: Incomplete
    name: Incomplete
    set_config_dict: Incomplete
    incremental_configs: Incomplete
    configs: Incomplete
    error: Incomplete
    def __init__(self, restype: ResourceType | str | int, name: str, set_config: dict[str, str] | None = None, described_configs: dict[str, ConfigEntry] | None = None, error: Any | None = None, incremental_configs: list[ConfigEntry] | None = None) -> None:
        """
        :param ConfigResource.Type restype: Resource type.
        :param str name: The resource name, which depends on restype.
                         For RESOURCE_BROKER, the resource name is the broker id.
        :param dict set_config: The configuration to set/overwrite. Dictionary of str, str.
        :param list(ConfigEntry) incremental_configs: The configuration entries to alter incrementally.
        :param dict described_configs: For internal use only.
        :param KafkaError error: For internal use only.
        """
    def __hash__(self) -> int: ...
    def __lt__(self, other: object) -> bool: ...
    def __eq__(self, other: object) -> bool: ...
    def __len__(self) -> int:
        """
        :rtype: int
        :returns: number of configuration entries/operations
        """
    def set_config(self, name: str, value: str, overwrite: bool = True) -> None:
        """
        Set/overwrite a configuration value.

        When calling alter_configs, any configuration properties that are not included
        in the request will be reverted to their default values. As a workaround, use
        describe_configs() to retrieve the current configuration and overwrite the
        settings you want to change.

        :param str name: Configuration property name
        :param str value: Configuration value
        :param bool overwrite: If True, overwrite entry if it already exists (default).
                               If False, do nothing if entry already exists.
        """
    def add_incremental_config(self, config_entry: ConfigEntry) -> None:
        """
        Add a ConfigEntry for incremental alter configs, using the
        configured incremental_operation.

        :param ConfigEntry config_entry: config entry to incrementally alter.
        """
    def __le__(self, other): ...
    def __gt__(self, other): ...
    def __ge__(self, other): ...
