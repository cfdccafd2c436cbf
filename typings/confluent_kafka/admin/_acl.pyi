from .._util import ConversionUtil as ConversionUtil, ValidationUtil as ValidationUtil
from ._resource import ResourcePatternType as ResourcePatternType, ResourceType as ResourceType
from _typeshed import Incomplete
from enum import Enum
from typing import Any

string_type = basestring
string_type = str

class AclOperation(Enum):
    """
    Enumerates the different types of ACL operation.
    """
    UNKNOWN = ...
    ANY = ...
    ALL = ...
    READ = ...
    WRITE = ...
    CREATE = ...
    DELETE = ...
    ALTER = ...
    DESCRIBE = ...
    CLUSTER_ACTION = ...
    DESCRIBE_CONFIGS = ...
    ALTER_CONFIGS = ...
    IDEMPOTENT_WRITE = ...
    def __lt__(self, other: object) -> bool: ...

class AclPermissionType(Enum):
    """
    Enumerates the different types of ACL permission types.
    """
    UNKNOWN = ...
    ANY = ...
    DENY = ...
    ALLOW = ...
    def __lt__(self, other: object) -> bool: ...

class AclBinding:
    """
    Represents an ACL binding that specify the operation and permission type for a specific principal
    over one or more resources of the same type. Used by :meth:`AdminClient.create_acls`,
    returned by :meth:`AdminClient.describe_acls` and :meth:`AdminClient.delete_acls`.

    Parameters
    ----------
    restype : ResourceType
        The resource type.
    name : str
        The resource name, which depends on the resource type. For :attr:`ResourceType.BROKER`,
        the resource name is the broker id.
    resource_pattern_type : ResourcePatternType
        The resource pattern, relative to the name.
    principal : str
        The principal this AclBinding refers to.
    host : str
        The host that the call is allowed to come from.
    operation: AclOperation
        The operation/s specified by this binding.
    permission_type: AclPermissionType
        The permission type for the specified operation.
    """
    restype: Incomplete
    name: Incomplete
    resource_pattern_type: Incomplete
    principal: Incomplete
    host: Incomplete
    operation: Incomplete
    permission_type: Incomplete
    restype_int: Incomplete
    resource_pattern_type_int: Incomplete
    operation_int: Incomplete
    permission_type_int: Incomplete
    def __init__(self, restype: ResourceType | str | int, name: str, resource_pattern_type: ResourcePatternType | str | int, principal: str, host: str, operation: AclOperation | str | int, permission_type: AclPermissionType | str | int) -> None: ...
    def __hash__(self) -> int: ...
    def __lt__(self, other: object) -> bool: ...
    def __eq__(self, other: object) -> Any: ...
    def __le__(self, other): ...
    def __gt__(self, other): ...
    def __ge__(self, other): ...

class AclBindingFilter(AclBinding):
    """
    Represents an ACL binding filter used to return a list of ACL bindings matching some or all of its attributes.
    Used by :meth:`AdminClient.describe_acls` and :meth:`AdminClient.delete_acls`.

    Parameters
    ----------
    restype : ResourceType
        The resource type, or :attr:`ResourceType.ANY` to match any value.
    name : str
        The resource name to match.
        None matches any value.
    resource_pattern_type : ResourcePatternType
        The resource pattern, :attr:`ResourcePatternType.ANY` to match any value or
        :attr:`ResourcePatternType.MATCH` to perform pattern matching.
    principal : str
        The principal to match, or None to match any value.
    host : str
        The host to match, or None to match any value.
    operation: AclOperation
        The operation to match or :attr:`AclOperation.ANY` to match any value.
    permission_type: AclPermissionType
        The permission type to match or :attr:`AclPermissionType.ANY` to match any value.
    """
