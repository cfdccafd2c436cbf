from .._model import Node as Node
from .._util import ConversionUtil as ConversionUtil
from ._acl import AclOperation as AclOperation
from _typeshed import Incomplete

class DescribeClusterResult:
    """
    Represents cluster description information used in describe cluster operation.
    Used by :meth:`AdminClient.describe_cluster`.

    Parameters
    ----------
    controller : Node
        The current controller in the cluster.
    nodes : list(Node)
        Information about each node in the cluster.
    cluster_id : str
        The current cluster id in the cluster.
    authorized_operations: list(AclOperation)
        AclOperations allowed for the cluster.
    """
    cluster_id: Incomplete
    controller: Incomplete
    nodes: Incomplete
    authorized_operations: Incomplete
    def __init__(self, controller: Node, nodes: list[Node], cluster_id: str | None = None, authorized_operations: list[str | int | AclOperation] | None = None) -> None: ...
