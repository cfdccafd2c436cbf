from .. import cimpl as cimpl
from _typeshed import Incomplete
from enum import Enum

class ScramMechanism(Enum):
    """
    Enumerates SASL/SCRAM mechanisms.
    """
    UNKNOWN = ...
    SCRAM_SHA_256 = ...
    SCRAM_SHA_512 = ...
    def __lt__(self, other: object) -> bool: ...

class ScramCredentialInfo:
    """
    Contains mechanism and iterations for a
    SASL/SCRAM credential associated with a user.

    Parameters
    ----------
    mechanism: ScramMechanism
        SASL/SCRAM mechanism.
    iterations: int
        Positive number of iterations used when creating the credential.
    """
    mechanism: Incomplete
    iterations: Incomplete
    def __init__(self, mechanism: ScramMechanism, iterations: int) -> None: ...

class UserScramCredentialsDescription:
    """
    Represent all SASL/SCRAM credentials
    associated with a user that can be retrieved.

    Parameters
    ----------
    user: str
        The user name.
    scram_credential_infos: list(ScramCredentialInfo)
        SASL/SCRAM credential representations for the user.
    """
    user: Incomplete
    scram_credential_infos: Incomplete
    def __init__(self, user: str, scram_credential_infos: list[ScramCredentialInfo]) -> None: ...

class UserScramCredentialAlteration:
    """
    Base class for SCRAM credential alterations.

    Parameters
    ----------
    user: str
        The user name.
    """
    user: Incomplete
    def __init__(self, user: str) -> None: ...

class UserScramCredentialUpsertion(UserScramCredentialAlteration):
    """
    A request to update/insert a SASL/SCRAM credential for a user.

    Parameters
    ----------
    user: str
        The user name.
    scram_credential_info: ScramCredentialInfo
        The mechanism and iterations.
    password: bytes
        Password to HMAC before storage.
    salt: bytes
        Salt to use. Will be generated randomly if None. (optional)
    """
    scram_credential_info: Incomplete
    password: Incomplete
    salt: Incomplete
    def __init__(self, user: str, scram_credential_info: ScramCredentialInfo, password: bytes, salt: bytes | None = None) -> None: ...

class UserScramCredentialDeletion(UserScramCredentialAlteration):
    """
    A request to delete a SASL/SCRAM credential for a user.

    Parameters
    ----------
    user: str
        The user name.
    mechanism: ScramMechanism
        SASL/SCRAM mechanism.
    """
    mechanism: Incomplete
    def __init__(self, user: str, mechanism: ScramMechanism) -> None: ...
