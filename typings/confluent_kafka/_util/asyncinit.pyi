def asyncinit(cls):
    """
    Decorator to make a class async-initializable.

    The decorated class must define ``async def __init__``; instantiating it
    then yields a coroutine, so instances are created with
    ``obj = await Cls(...)``.
    """
