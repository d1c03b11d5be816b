"""Flux job ids: FLUID generation and encodings (Flux RFC 19).

A FLUID is a 64-bit integer ``[timestamp:40 | generator id:14 | seq:10]``.
It has several string encodings, all accepted by :class:`JobID`:

========  ===============================================
dec       ``6731191091817518``
hex       ``0x17e9fb8df16c2e``
dothex    ``0017.e9fb.8df1.6c2e``
kvs       ``job.0017.e9fb.8df1.6c2e`` (KVS directory of the job)
f58       ``ƒuZZybuNNy`` (base58, U+0192 prefix; ``f`` also decodes)
words     ``academy-academy-academy--academy-academy-academy`` (mnemonicode)
emoji     ``😃`` (base 576)
========  ===============================================

Decoding follows RFC 19: strip surrounding whitespace; a ``.`` means dothex
(``job.`` prefix allowed), a ``-`` means words, a leading ``ƒ``/``f`` means
F58, a leading emoji means emoji, ``0x`` means hex, anything else decimal.

F58 output uses the ASCII ``f`` prefix instead of ``ƒ`` when the environment
variable ``FLUX_F58_FORCE_ASCII`` is set (to anything), as flux-core does.
"""

from __future__ import annotations

import os
import time
from _collections_abc import Callable  # collections.abc, without importing collections (~1.5 ms)

__all__ = ["JobID", "FluidGenerator", "encode", "parse", "get_timestamp"]

TS_BITS, ID_BITS, SEQ_BITS = 40, 14, 10
MAX_ID = (1 << 64) - 1

F58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
F58_PREFIX, F58_ASCII_PREFIX = "\u0192", "f"
_F58_MAP = {c: i for i, c in enumerate(F58_ALPHABET)}
_F58_MAXLEN = 12

# RFC 19 basemoji table: 576 emoji, index = digit value (U+1F603 is 0).
EMOJI = (
    "😃😄😁😆😅😂😉😊😍😘😚😋😜😝😏😒😌😔😪😷😵😲😳😨"
    "😰😥😢😭😱😖😣😞😓😩😫😤😡😠👿💀💩👹👺👻👽👾😺😸"
    "😹😻😼😽🙀😿😾🙈🙉🙊💌💘💝💖💗💓💞💕💟💔💛💚💙💜"
    "💋💯💢💥💫💦💨💬💤👋👌👈👉👆👇👍👎👊👏🙌👐🙏💅💪"
    "👂👃👀👅👄👶👦👧👱👨👩👴👵🙍🙎🙅🙆💁🙋🙇👮💂👷👸"
    "👳👲👰👼🎅💆💇🚶🏃💃👯🏂🏄🏊🛀👫💏💑👪👤👣🐵🐒🐶"
    "🐩🐺🐱🐯🐴🐎🐮🐷🐗🐽🐑🐫🐘🐭🐹🐰🐻🐨🐼🐾🐔🐣🐤🐥"
    "🐦🐧🐸🐢🐍🐲🐳🐬🐟🐠🐡🐙🐚🐌🐛🐜🐝🐞💐🌸💮🌹🌺🌻"
    "🌼🌷🌱🌴🌵🌾🌿🍀🍁🍂🍃🍄🍇🍈🍉🍊🍌🍍🍎🍏🍑🍒🍓🍅"
    "🍆🌽🌰🍞🍖🍗🍔🍟🍕🍳🍲🍱🍘🍙🍚🍛🍜🍝🍠🍢🍣🍤🍥🍡"
    "🍦🍧🍨🍩🍪🎂🍰🍫🍬🍭🍮🍯🍵🍶🍷🍸🍹🍺🍻🍴🔪🌏🗾🌋"
    "🗻🏠🏡🏢🏣🏥🏦🏨🏩🏪🏫🏬🏭🏯🏰💒🗼🗽🌁🌃🌄🌅🌆🌇"
    "🌉🎠🎡🎢💈🎪🚃🚄🚅🚇🚉🚌🚑🚒🚓🚕🚗🚙🚚🚲🚏🚨🚥🚧"
    "🚤🚢💺🚀🕛🕐🕑🕒🕓🕔🕕🕖🕗🕘🕙🕚🌑🌓🌔🌕🌙🌛🌟🌠"
    "🌌🌀🌈🌂🔥💧🌊🎃🎄🎆🎇🎈🎉🎊🎋🎍🎎🎏🎐🎑🎀🎁🎫🏆"
    "🏀🏈🎾🎳🎣🎽🎿🎯🔫🎱🔮🎮🎰🎲🃏🀄🎴🎭🎨👓👔👕👖👗"
    "👘👙👚👛👜👝🎒👞👟👠👡👢👑👒🎩🎓💄💍💎🔊📢📣🔔🎼"
    "🎵🎶🎤🎧📻🎷🎸🎹🎺🎻📱📲📞📟📠🔋🔌💻💽💾💿📀🎥🎬"
    "📺📷📹📼🔍🔎💡🔦🏮📔📕📖📗📘📙📚📓📒📃📜📄📰📑🔖"
    "💰💴💵💸💳💹📧📨📩📤📥📦📫📪📮📝💼📁📂📅📆📇📈📉"
    "📊📋📌📍📎📏📐🔒🔓🔏🔐🔑🔨💣🔧🔩🔗📡💉💊🚪🚽🚬🗿"
    "🏧🚹🚺🚻🚼🚾🚫🚭🔞🔃🔙🔚🔛🔜🔝🔯🔼🔽🎦📶📳📴💱💲"
    "🔱📛🔰🔟🔠🔡🔢🔣🔤🆎🆑🆒🆓🆔🆕🆖🆗🆘🆙🆚🈁🈶🈯🉐"
    "🈹🈚🈲🉑🈸🈴🈳🈺🈵🔴🔵🔶🔷🔸🔹🔺🔻💠🔘🔳🔲🏁🚩🎌"
)
_EMOJI_MAP: dict[str, int] = {}

ENCODINGS = ("dec", "hex", "dothex", "kvs", "f58", "f58plain", "words", "emoji")


def _invalid(s: object) -> ValueError:
    return ValueError(f"invalid job id {s!r}")


def _check(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise ValueError(f"invalid job id {value!r}: must be in 0..2**64-1")
    return value


# -- encoders -------------------------------------------------------------

def _base(value: int, digits: str) -> str:
    n = len(digits)
    out = []
    while True:
        value, rem = divmod(value, n)
        out.append(digits[rem])
        if value == 0:
            return "".join(reversed(out))


def _f58(value: int, ascii_prefix: bool) -> str:
    return (F58_ASCII_PREFIX if ascii_prefix else F58_PREFIX) + _base(value, F58_ALPHABET)


def _words(value: int) -> str:
    from flux_launch.core._mnemonic_words import BASE, WORDS

    out = []
    for x in (value & 0xFFFFFFFF, value >> 32):  # little-endian 32-bit groups
        out.append("-".join(WORDS[(x // BASE**k) % BASE] for k in range(3)))
    return "--".join(out)


def _dothex(value: int) -> str:
    h = f"{value:016x}"
    return ".".join(h[i:i + 4] for i in range(0, 16, 4))


def encode(value: int, encoding: str = "f58") -> str:
    """Encode a FLUID as a string.

    Args:
        value: the id, ``0 <= value < 2**64``.
        encoding: one of ``dec``, ``hex``, ``dothex``, ``kvs``, ``f58``
            (ASCII prefix if ``FLUX_F58_FORCE_ASCII`` is set), ``f58plain``
            (always ASCII ``f``), ``words`` or ``emoji``.

    Returns:
        The encoded string.

    Raises:
        ValueError: if ``encoding`` is unknown or ``value`` out of range.
    """
    value = _check(int(value))
    if encoding == "dec":
        return str(value)
    if encoding == "hex":
        return hex(value)
    if encoding == "dothex":
        return _dothex(value)
    if encoding == "kvs":
        return "job." + _dothex(value)
    if encoding == "f58":
        return _f58(value, "FLUX_F58_FORCE_ASCII" in os.environ)
    if encoding == "f58plain":
        return _f58(value, True)
    if encoding == "words":
        return _words(value)
    if encoding == "emoji":
        return _base(value, EMOJI)
    raise ValueError(f"unknown job id encoding {encoding!r}")


# -- decoders -------------------------------------------------------------

_WORD_INDEX: dict[str, int] = {}


def _decode_words(s: str, orig: str) -> int:
    """Decode ``w-w-w--w-w-w``: words are runs of ASCII letters (any case)
    separated by anything else, as in mnemonicode's ``mn_decode()``."""
    from flux_launch.core._mnemonic_words import BASE, WORDS

    if not _WORD_INDEX:
        _WORD_INDEX.update((w, i) for i, w in enumerate(WORDS))
    words = "".join(c if c.isascii() and c.isalpha() else " " for c in s).split()
    if len(words) != 6:
        raise _invalid(orig)
    value = 0
    for g in range(2):
        x = 0
        for k in range(3):
            i = _WORD_INDEX.get(words[g * 3 + k].lower())
            if i is None or i >= BASE:  # unknown, or a 24-bit remainder word
                raise _invalid(orig)
            x += i * BASE**k
        if x > 0xFFFFFFFF:  # one of the ~0.09% unused word triples
            raise _invalid(orig)
        value |= x << (32 * g)
    return value


def _decode_digits(s: str, table: dict[str, int], base: int, orig: str) -> int:
    value = 0
    for c in s:
        d = table.get(c)
        if d is None:
            raise _invalid(orig)
        value = value * base + d
    return value


def parse(s: str) -> int:
    """Decode a job id string in any RFC 19 encoding.

    Args:
        s: e.g. ``"ƒuZZybuNNy"``, ``"fuZZybuNNy"``, ``"6731191091817518"``,
            ``"0x17e9fb8df16c2e"``, ``"0017.e9fb.8df1.6c2e"``,
            ``"job.0017.e9fb.8df1.6c2e"``, a mnemonic ``"w-w-w--w-w-w"`` or
            emoji.  Leading and trailing whitespace is ignored.

    Returns:
        The id as an int.

    Raises:
        ValueError: ``invalid job id '<s>'`` if ``s`` matches no encoding or
            the value does not fit in 64 bits.
    """
    if not isinstance(s, str):
        raise TypeError(f"job id string expected, not {type(s).__name__}")
    t = s.strip()
    if not t:
        raise _invalid(s)
    if "." in t:
        if t.startswith("job."):
            t = t[4:]
        parts = t.split(".")
        if len(parts) != 4 or not all(0 < len(p) <= 4 for p in parts):
            raise _invalid(s)
        value = 0
        for p in parts:
            if p.strip("0123456789abcdefABCDEF"):
                raise _invalid(s)
            value = (value << 16) | int(p, 16)
        return value
    if "-" in t:
        return _decode_words(t, s)
    if t[0] in (F58_PREFIX, F58_ASCII_PREFIX):
        body = t[1:]
        if not body or len(body) > _F58_MAXLEN:
            raise _invalid(s)
        value = _decode_digits(body, _F58_MAP, 58, s)
    elif 0x1F000 <= ord(t[0]) <= 0x1FFFF:
        if not _EMOJI_MAP:
            _EMOJI_MAP.update((e, i) for i, e in enumerate(EMOJI))
        value = _decode_digits(t, _EMOJI_MAP, 576, s)
    elif t.startswith("0x"):
        body = t[2:]
        if not body or body.strip("0123456789abcdefABCDEF"):
            raise _invalid(s)
        value = int(body, 16)
    else:
        if not t.isascii() or not t.isdigit():
            raise _invalid(s)
        value = int(t)
    if value > MAX_ID:
        raise _invalid(s)
    return value


def get_timestamp(fluid: int) -> int:
    """Return the 40-bit millisecond timestamp field of a FLUID."""
    return fluid >> (ID_BITS + SEQ_BITS)


# -- JobID ----------------------------------------------------------------

class JobID(int):
    """A job id: an ``int`` that knows all RFC 19 encodings.

    ``JobID(x)`` accepts an int, another JobID, or a string in any encoding
    (see :func:`parse`).  ``str(jobid)`` is the F58 form.

    Raises:
        ValueError: ``invalid job id '<s>'`` for an undecodable string, or an
            int outside ``0..2**64-1``.
        TypeError: for other argument types.
    """

    orig: str

    def __new__(cls, value: int | str) -> JobID:
        if isinstance(value, str):
            self = super().__new__(cls, parse(value))
            self.orig = value
            return self
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"job id must be int or str, not {type(value).__name__}")
        self = super().__new__(cls, _check(int(value)))
        self.orig = str(int(value))
        return self

    def encode(self, encoding: str = "dec") -> str:
        """Return the id in ``encoding`` (see module :func:`encode`).

        Raises:
            ValueError: if ``encoding`` is unknown.
        """
        return encode(self, encoding)

    dec = property(lambda self: encode(self, "dec"), doc="Decimal form.")
    hex = property(lambda self: encode(self, "hex"), doc="``0x`` hex form.")
    dothex = property(lambda self: encode(self, "dothex"), doc="``xxxx.xxxx.xxxx.xxxx``.")
    kvs = property(lambda self: encode(self, "kvs"), doc="KVS directory ``job.<dothex>``.")
    f58 = property(lambda self: encode(self, "f58"), doc="F58 (``ƒ`` unless forced ASCII).")
    f58plain = property(lambda self: encode(self, "f58plain"), doc="F58 with ASCII ``f``.")
    words = property(lambda self: encode(self, "words"), doc="Mnemonic words.")
    emoji = property(lambda self: encode(self, "emoji"), doc="Basemoji form.")

    @property
    def timestamp(self) -> int:
        """Milliseconds since the generator epoch (the top 40 bits)."""
        return get_timestamp(self)

    def __str__(self) -> str:
        return self.f58

    def __repr__(self) -> str:
        return f"JobID({int(self)})"


# -- generator ------------------------------------------------------------

class FluidGenerator:
    """Generate unique, k-ordered FLUIDs (RFC 19).

    The timestamp field counts milliseconds from ``start_timestamp`` onwards
    using the monotonic ``clock``, so wall-clock steps do not reorder ids.

    Args:
        generator_id: this generator's id, ``0 <= generator_id < 16384``
            (by convention the broker rank).
        epoch_ms: wall-clock time (ms since the Unix epoch) that timestamp
            0 stands for; used only when ``start_timestamp`` is None.
        start_timestamp: timestamp (ms since the epoch) of the first id,
            e.g. restored from a checkpoint so ids keep increasing across
            restarts.  Defaults to ``now - epoch_ms`` (at least 0).
        clock: callable returning monotonic milliseconds (int or float);
            defaults to :func:`time.monotonic_ns` based.  Tests pass a fake.

    Raises:
        ValueError: if ``generator_id`` or ``start_timestamp`` is out of
            range.
    """

    def __init__(self, generator_id: int, epoch_ms: int = 0,
                 start_timestamp: int | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        if not 0 <= generator_id < (1 << ID_BITS):
            raise ValueError(f"invalid FLUID generator id {generator_id}: must be 0..16383")
        self._clock = clock or (lambda: time.monotonic_ns() // 1_000_000)
        if start_timestamp is None:
            start_timestamp = max(0, time.time_ns() // 1_000_000 - int(epoch_ms))
        if not 0 <= start_timestamp < (1 << TS_BITS):
            raise ValueError(f"invalid FLUID start timestamp {start_timestamp}")
        self.generator_id = generator_id
        self._clock_zero = int(self._clock())
        self._offset = int(start_timestamp)
        self._timestamp = self._offset
        self._seq = 0

    def _update(self) -> None:
        ts = int(self._clock()) - self._clock_zero + self._offset
        if ts >= (1 << TS_BITS):
            raise OverflowError("FLUID timestamp space exhausted")
        if ts > self._timestamp:
            self._timestamp, self._seq = ts, 0

    @property
    def timestamp(self) -> int:
        """Current timestamp (ms); save it to restart a generator later."""
        self._update()
        return self._timestamp

    def next(self) -> int:
        """Return a new FLUID, larger than every id this generator returned.

        When 1024 ids have been issued within one millisecond this busy-waits
        (at most about 1 ms of real time) for the clock to advance.

        Raises:
            OverflowError: if the 40-bit timestamp space is exhausted.
        """
        self._update()
        while self._seq >= (1 << SEQ_BITS):
            self._update()
        fluid = (self._timestamp << (ID_BITS + SEQ_BITS)) | (
            self.generator_id << SEQ_BITS) | self._seq
        self._seq += 1
        return fluid

    __next__ = next

    def __iter__(self) -> FluidGenerator:
        return self
