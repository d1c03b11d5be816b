"""Tests for flux_launch.core.jobid (RFC 19 FLUID)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux_launch.core import jobid
from flux_launch.core._mnemonic_words import BASE, WORDS
from flux_launch.core.jobid import FluidGenerator, JobID

ENC = ("dec", "hex", "dothex", "kvs", "f58", "words", "emoji")

# Vectors from flux-core t/python/t0010-job.py (test_24_jobid)
VECTORS = [
    (0, "0", "0x0", "0000.0000.0000.0000", "job.0000.0000.0000.0000", "ƒ1",
     "academy-academy-academy--academy-academy-academy", "😃"),
    (1, "1", "0x1", "0000.0000.0000.0001", "job.0000.0000.0000.0001", "ƒ2",
     "acrobat-academy-academy--academy-academy-academy", "😄"),
    (65535, "65535", "0xffff", "0000.0000.0000.ffff", "job.0000.0000.0000.ffff",
     "ƒLUv", "nevada-archive-academy--academy-academy-academy", "💁📚"),
    (6787342413402046, "6787342413402046", "0x181d0d4d850fbe",
     "0018.1d0d.4d85.0fbe", "job.0018.1d0d.4d85.0fbe", "ƒuzzybunny",
     "cake-plume-nepal--neuron-pencil-academy", "👴😱🔚🎮🕙🚩"),
    (18446744073709551614, "18446744073709551614", "0xfffffffffffffffe",
     "ffff.ffff.ffff.fffe", "job.ffff.ffff.ffff.fffe", "ƒjpXCZedGfVP",
     "mustang-analyze-verbal--natural-analyze-verbal", "🚹💗💧👗😷📷📙"),
]


@pytest.fixture(autouse=True)
def _no_force_ascii(monkeypatch):
    monkeypatch.delenv("FLUX_F58_FORCE_ASCII", raising=False)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: str(v[0]))
def test_every_encoding(vector):
    value, *strings = vector
    j = JobID(value)
    for enc, s in zip(ENC, strings):
        assert getattr(j, enc) == s, enc
        assert j.encode(enc) == s
        assert jobid.encode(value, enc) == s
        assert JobID(s) == value, s
        assert jobid.parse(s) == value


def test_rfc19_example():
    assert JobID(6731191091817518).f58 == "ƒuZZybuNNy"
    assert str(JobID(6731191091817518)) == "ƒuZZybuNNy"
    assert JobID("ƒuZZybuNNy") == 6731191091817518
    assert JobID("fuZZybuNNy") == 6731191091817518
    assert JobID(6731191091817518).hex == "0x17e9fb8df16c2e"
    assert JobID(6731191091817518).dothex == "0017.e9fb.8df1.6c2e"
    # RFC 19 examples of the other encodings
    assert JobID("reform-remote-galileo--heart-package-academy") == 0x17E9FB8DF16C2E
    assert JobID("random-idea-yoyo--sugar-printer-academy") == 0xEDAF97D000000
    assert JobID("ƒZemgA8Bzf") == 0xEDAF97D000000


# flux-core src/common/libutil/test/fluid.c F58 vectors
F58 = [
    (0, "ƒ1"), (1, "ƒ2"), (57, "ƒz"), (1234, "ƒNH"), (1888, "ƒZZ"),
    (3363, "ƒzz"), (3364, "ƒ211"), (4369, "ƒ2JL"), (65535, "ƒLUv"),
    (4294967295, "ƒ7YXq9G"), (633528662, "ƒxyzzy"),
    (6731191091817518, "ƒuZZybuNNy"),
    (18446744073709551614, "ƒjpXCZedGfVP"), (18446744073709551615, "ƒjpXCZedGfVQ"),
]


@pytest.mark.parametrize("value,text", F58)
def test_f58_vectors(value, text):
    assert JobID(value).f58 == text
    assert JobID(value).f58plain == "f" + text[1:]
    assert JobID(text) == value
    assert JobID("f" + text[1:]) == value


def test_f58_leading_ones_decode():
    assert JobID("f111") == 0


# flux-core fluid.c parse vectors (other encodings)
PARSE = [
    (1234, "1234"), (6731191091817518, "6731191091817518"),
    (18446744073709551615, "18446744073709551615"), (57, "0x39"),
    (633528662, "0x25c2e156"), (6731191091817518, "0x17e9fb8df16c2e"),
    (18446744073709551615, "0xffffffffffffffff"), (0, "0.0.0.0"),
    (57, "0.0.0.0039"), (4294967295, "0000.0000.ffff.ffff"),
    (18446744073709551615, "ffff.ffff.ffff.ffff"),
    (18446744073709551615, "natural-analyze-verbal--natural-analyze-verbal"),
    (57, "🙊"), (1234, "😁👌"), (1888, "😆🐻"), (4369, "😊🌀"),
    (4294967295, "😳🏪🍖🍸"), (18446744073709551615, "🚹💗💧👗😷📷📚"),
    (65535, " 0xffff   "), (65535, "\tjob.0000.0000.0000.ffff\n"),
    (1, "ACROBAT-Academy-academy--academy-academy-academy"),
]


@pytest.mark.parametrize("value,text", PARSE)
def test_parse_vectors(value, text):
    assert JobID(text) == value


INVALID = [
    "", "   ", "boo", "f", "ƒ", "flux", "f1230", "x1", "-1", "1.5", "0x", "0xg",
    "12a", "+5", "0000.0000.0000", "0000.0000.0000.0000.0000", "00000.0.0.0",
    "job.", "job.x.0.0.0", "a-a-a--a-a-a", "academy-academy-academy",
    "academy-academy-academy--academy-academy-academy-academy",
    "ego-academy-academy--academy-academy-academy",  # 24-bit remainder word
    "yes-yes-zoom--academy-academy-academy",
    "academy-academy-amen--academy-academy-academy",  # triple > 2**32-1
    "18446744073709551616", "0x10000000000000000", "fzzzzzzzzzzzz",
    "fjpXCZedGfVR", "🚹💗💧👗😷📷📛", "😃x", "1 2",
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid(text):
    with pytest.raises(ValueError) as exc:
        JobID(text)
    assert str(exc.value) == f"invalid job id {text!r}"


def test_invalid_message():
    with pytest.raises(ValueError, match=r"^invalid job id 'xyz'$"):
        JobID("xyz")


def test_int_range_and_types():
    with pytest.raises(ValueError):
        JobID(-1)
    with pytest.raises(ValueError):
        JobID(1 << 64)
    with pytest.raises(TypeError):
        JobID(1.5)
    with pytest.raises(TypeError):
        JobID(True)
    with pytest.raises(ValueError):
        jobid.encode(1, "base64")


def test_jobid_is_int():
    j = JobID("ƒ2")
    assert isinstance(j, int) and j == 1 and j + 1 == 2
    assert hash(j) == hash(1)
    assert repr(j) == "JobID(1)"
    assert j.orig == "ƒ2"
    assert JobID(JobID(1234)).orig == "1234"
    assert JobID(1234).dec == "1234"


def test_force_ascii_env(monkeypatch):
    monkeypatch.setenv("FLUX_F58_FORCE_ASCII", "1")
    j = JobID(6731191091817518)
    assert j.f58 == "fuZZybuNNy"
    assert str(j) == "fuZZybuNNy"
    assert j.encode("f58") == "fuZZybuNNy"
    monkeypatch.delenv("FLUX_F58_FORCE_ASCII")
    assert str(j) == "ƒuZZybuNNy"
    assert j.f58plain == "fuZZybuNNy"


def test_word_list():
    assert len(WORDS) == 1633 and BASE == 1626
    assert len(set(WORDS)) == 1633
    assert WORDS[0] == "academy" and WORDS[1625] == "amen"
    assert WORDS[1626:] == ("ego", "fax", "jet", "job", "rio", "ski", "yes")


def test_emoji_table():
    assert len(jobid.EMOJI) == 576 and len(set(jobid.EMOJI)) == 576
    assert jobid.EMOJI[0] == "\U0001F603"


def test_timestamp_field():
    fluid = (12345 << 24) | (7 << 10) | 3
    assert jobid.get_timestamp(fluid) == 12345
    assert JobID(fluid).timestamp == 12345


# -- property-based round trips -------------------------------------------

ids64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@given(ids64, st.sampled_from(jobid.ENCODINGS))
def test_roundtrip_every_encoding(value, enc):
    s = jobid.encode(value, enc)
    assert jobid.parse(s) == value
    assert JobID(s) == value


@given(ids64)
def test_words_shape(value):
    words = JobID(value).words
    first, second = words.split("--")
    assert len(first.split("-")) == 3 and len(second.split("-")) == 3
    assert all(w in WORDS[:BASE] for w in first.split("-") + second.split("-"))


@given(ids64, ids64)
def test_f58_preserves_order_by_length_then_text(a, b):
    # shorter f58 strings are smaller numbers; equal length compare by digits
    fa, fb = JobID(a).f58plain[1:], JobID(b).f58plain[1:]
    key = lambda s: (len(s), [jobid.F58_ALPHABET.index(c) for c in s])  # noqa: E731
    assert (key(fa) < key(fb)) == (a < b)


# -- FLUID generator ------------------------------------------------------

class FakeClock:
    def __init__(self, start=1000, step=0):
        self.now = start
        self.step = step

    def __call__(self):
        t = self.now
        self.now += self.step
        return t


def parts(fluid):
    return fluid >> 24, (fluid >> 10) & 0x3FFF, fluid & 0x3FF


def test_generator_layout():
    clock = FakeClock()
    gen = FluidGenerator(5, start_timestamp=100, clock=clock)
    assert parts(gen.next()) == (100, 5, 0)
    assert parts(gen.next()) == (100, 5, 1)
    clock.now += 3
    assert parts(gen.next()) == (103, 5, 0)
    assert gen.timestamp == 103


def test_generator_sequence_overflow_waits_for_clock():
    clock = FakeClock()
    gen = FluidGenerator(1, start_timestamp=0, clock=clock)
    ids = [gen.next() for _ in range(1024)]
    assert [parts(i)[2] for i in ids] == list(range(1024))
    assert all(parts(i)[0] == 0 for i in ids)
    clock.step = 1  # the busy-wait needs the clock to advance
    nxt = gen.next()
    assert parts(nxt)[0] >= 1 and parts(nxt)[2] == 0
    assert nxt > ids[-1]


def test_generator_ids_unique_and_increasing():
    gen = FluidGenerator(16383, start_timestamp=0)
    ids = [next(gen) for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(parts(i)[1] == 16383 for i in ids)


def test_generator_restart_from_saved_timestamp():
    clock = FakeClock()
    gen = FluidGenerator(0, start_timestamp=50, clock=clock)
    last = gen.next()
    gen2 = FluidGenerator(0, start_timestamp=jobid.get_timestamp(last) + 1, clock=clock)
    assert gen2.next() > last


def test_generator_epoch_default_start():
    import time

    epoch = time.time_ns() // 1_000_000 - 5000
    gen = FluidGenerator(0, epoch_ms=epoch, clock=FakeClock())
    assert 5000 <= jobid.get_timestamp(gen.next()) < 5000 + 60_000


def test_generator_invalid_args():
    with pytest.raises(ValueError):
        FluidGenerator(16384)
    with pytest.raises(ValueError):
        FluidGenerator(-1)
    with pytest.raises(ValueError):
        FluidGenerator(0, start_timestamp=1 << 40)


def test_generator_timestamp_exhausted():
    clock = FakeClock()
    gen = FluidGenerator(0, start_timestamp=(1 << 40) - 1, clock=clock)
    gen.next()
    clock.now += 1
    with pytest.raises(OverflowError):
        gen.next()
