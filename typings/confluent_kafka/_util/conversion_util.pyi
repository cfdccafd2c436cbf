from enum import Enum

class ConversionUtil:
    @staticmethod
    def convert_to_enum(val: str | int | Enum, enum_clazz: type[Enum]) -> Enum: ...
