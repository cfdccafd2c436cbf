"""The simulator's fixed tables (:mod:`producers.simulator`): scenario names and codes, channels,
home regions, countries and currencies, merchant category codes and channel mixes per terminal
kind."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from schemas.events import Channel

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]
_Bool = npt.NDArray[np.bool_]

_DAY_S: Final = 86_400
_GRID: Final = 100.0

SCENARIOS: Final = (
    "amount_threshold",
    "compromised_terminal",
    "compromised_card",
    "card_testing",
    "cross_border",
)
"""Fraud scenario names, in precedence order (a later one wins when several apply)."""

_AMOUNT_THRESHOLD, _COMPROMISED_TERMINAL, _COMPROMISED_CARD, _CARD_TESTING, _CROSS_BORDER = range(
    1, 6
)

_CHANNELS: Final = (
    Channel.CARD_PRESENT,
    Channel.CONTACTLESS,
    Channel.ECOMMERCE,
    Channel.MOBILE_WALLET,
    Channel.ATM,
)
_IN_PERSON: Final = np.array([0, 1], dtype=np.int64)  # card_present, contactless mix columns
_ECOMMERCE: Final = 2

# Home regions: vertical strips of the grid, widths (in grid units, summing to 100) weight them.
_REGIONS: Final = (
    ("GB", 5),
    ("ES", 13),
    ("FR", 21),
    ("BE", 4),
    ("NL", 8),
    ("DE", 27),
    ("AT", 4),
    ("IT", 12),
    ("PL", 6),
)
# Countries of online merchants, with weights.
_ONLINE_HUBS: Final = (("NL", 20), ("IE", 20), ("LU", 15), ("DE", 15), ("GB", 10), ("FR", 10))
_ONLINE_HUBS_US: Final = ("US", 10)
# Far-away countries of foreign terminals.
_FAR_AWAY: Final = ("US", "BR", "TH", "ZA", "AE", "MX", "IN", "TR", "ID")
# Country -> (ISO 4217 currency, units per EUR; a fixed approximate rate). Every currency used has
# two decimal minor units in ISO 4217.
_CURRENCY: Final[dict[str, tuple[str, float]]] = {
    **{c: ("EUR", 1.0) for c in ("ES", "FR", "BE", "NL", "DE", "AT", "IT", "IE", "LU")},
    "GB": ("GBP", 0.85),
    "PL": ("PLN", 4.3),
    "US": ("USD", 1.08),
    "BR": ("BRL", 5.9),
    "TH": ("THB", 38.0),
    "ZA": ("ZAR", 20.0),
    "AE": ("AED", 4.0),
    "MX": ("MXN", 19.0),
    "IN": ("INR", 90.0),
    "TR": ("TRY", 35.0),
    "ID": ("IDR", 17_000.0),
}
# ISO 18245 merchant category codes with weights, per terminal kind.
_ATM_MCC: Final = "6011"  # automated cash disbursements
_PHYSICAL_MCCS: Final = (
    ("5411", 22),  # grocery stores, supermarkets
    ("5812", 12),  # eating places, restaurants
    ("5814", 10),  # fast food restaurants
    ("5541", 8),  # service stations
    ("5912", 6),  # drug stores and pharmacies
    ("5311", 5),  # department stores
    ("5651", 6),  # family clothing stores
    ("5732", 3),  # electronics stores
    ("5999", 8),  # miscellaneous and specialty retail
    ("4111", 6),  # local and suburban commuter transport
    ("4121", 3),  # taxicabs and limousines
    ("5813", 4),  # bars, taverns, nightclubs
    ("7011", 2),  # hotels, motels, resorts
    (_ATM_MCC, 5),
)
_ONLINE_MCCS: Final = (
    ("5964", 15),  # direct marketing, catalogue merchants
    ("5969", 10),  # direct marketing, other
    ("5815", 10),  # digital goods: media
    ("5816", 8),  # digital goods: games
    ("5817", 8),  # digital goods: applications
    ("5818", 10),  # digital goods: large merchants
    ("4722", 8),  # travel agencies and tour operators
    ("4814", 6),  # telecommunication services
    ("4899", 6),  # cable, satellite and other pay television
    ("5732", 9),  # electronics
    ("5999", 10),  # miscellaneous and specialty retail
)
_FOREIGN_MCCS: Final = (
    ("7011", 15),
    ("5812", 20),
    ("5814", 8),
    ("5411", 10),
    ("4121", 8),
    ("5999", 10),
    ("5944", 5),  # jewellery and watch stores
    ("5311", 5),
    ("5732", 7),
    (_ATM_MCC, 12),
)
# Base channel mixes (card_present, contactless, ecommerce, mobile_wallet, atm) per terminal kind.
_PHYSICAL_MIX: Final = (0.50, 0.33, 0.02, 0.15, 0.0)
_ONLINE_MIX: Final = (0.0, 0.0, 0.85, 0.15, 0.0)
_ATM_MIX: Final = (0.0, 0.0, 0.0, 0.0, 1.0)
_MIX_CONCENTRATION: Final = 30.0  # Dirichlet concentration around the base mix

_PHYSICAL, _ONLINE, _FOREIGN = 0, 1, 2
