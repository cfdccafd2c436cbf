from _typeshed import Incomplete

class DeletedRecords:
    '''
    DeletedRecords
    Represents information about deleted records.

    Parameters
    ----------
    low_watermark: int
        The "low watermark" for the topic partition on which the deletion was executed.
    '''
    low_watermark: Incomplete
    def __init__(self, low_watermark: int) -> None: ...
