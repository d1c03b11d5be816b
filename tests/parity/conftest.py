"""What the parity tests share."""

import threading

import pytest


@pytest.fixture
def same_in_threads():
    """``check(fn, datas, want)``: ``fn(datas[i]) == want[i]`` in one thread per item,
    all at once, 30 times each (the C wrappers keep their buffers per thread)."""

    def check(fn, datas, want):
        bad = []

        def work(i):
            for _ in range(30):
                if fn(datas[i]) != want[i]:
                    bad.append(i)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(datas))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not bad

    return check
