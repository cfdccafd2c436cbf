import abc
from .. import cimpl as cimpl
from _typeshed import Incomplete
from abc import ABC as ABC

class OffsetSpec(ABC, metaclass=abc.ABCMeta):
    """
    Used in `AdminClient.list_offsets` to specify the desired offsets
    of the partition being queried.
    """
    @classmethod
    def earliest(cls): ...
    @classmethod
    def latest(cls): ...
    @classmethod
    def max_timestamp(cls): ...
    @classmethod
    def for_timestamp(cls, timestamp: int): ...
    def __new__(cls, index: int): ...
    def __lt__(self, other: object) -> bool: ...

class TimestampSpec(OffsetSpec):
    """
    Used in a `AdminClient.list_offsets` call to retrieve the earliest offset
    whose timestamp is greater than or equal to the given timestamp in the
    corresponding partition.

    Parameters
    ----------
    timestamp: int
        timestamp in milliseconds.
    """
    def __new__(cls, _: int): ...
    timestamp: Incomplete
    def __init__(self, timestamp: int) -> None: ...

class MaxTimestampSpec(OffsetSpec):
    """
    Used in a `AdminClient.list_offsets` call to retrieve the offset with the
    largest timestamp, that could not correspond to the latest one as timestamps
    can be specified client-side.
    """
    def __new__(cls): ...

class LatestSpec(OffsetSpec):
    """
    Used in a `AdminClient.list_offsets` call to retrieve the queried partition latest offset.
    """
    def __new__(cls): ...

class EarliestSpec(OffsetSpec):
    """
    Used in a `AdminClient.list_offsets` call to retrieve the queried partition earliest offset.
    """
    def __new__(cls): ...

class ListOffsetsResultInfo:
    """
    ListOffsetsResultInfo
    Result of a `AdminClient.list_offsets` call associated to a partition.

    Parameters
    ----------
    offset: int
        The offset returned by the list_offsets call.
    timestamp: int
        The timestamp in milliseconds corresponding to the offset.
        Not available (-1) when querying for the earliest or the latest offsets.
    leader_epoch: int
        The leader epoch corresponding to the offset (optional).
    """
    offset: Incomplete
    timestamp: Incomplete
    leader_epoch: int | None
    def __init__(self, offset: int, timestamp: int, leader_epoch: int) -> None: ...
