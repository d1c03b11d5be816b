"""The purge limits (broker attributes) and flux-core's eligibility rule."""

import pytest

from flux_launch.services.job_manager.purge import AGE_UNLIMITED, NUM_UNLIMITED, _eligible, parse_limits


def test_limits_unset_mean_unlimited():
    assert parse_limits({}) == (AGE_UNLIMITED, NUM_UNLIMITED)


@pytest.mark.parametrize("attrs, want", [
    ({"job-manager.inactive-num-limit": "0"}, (AGE_UNLIMITED, 0)),
    ({"job-manager.inactive-num-limit": "1000"}, (AGE_UNLIMITED, 1000)),
    ({"job-manager.inactive-age-limit": "7d"}, (7 * 86400.0, NUM_UNLIMITED)),
    ({"job-manager.inactive-age-limit": "1.5m", "job-manager.inactive-num-limit": "3"}, (90.0, 3)),
])
def test_limits_parse(attrs, want):
    assert parse_limits(attrs) == want


@pytest.mark.parametrize("attrs, message", [
    ({"job-manager.inactive-num-limit": "-1"}, "inactive-num-limit: must be an integer >= 0, not '-1'"),
    ({"job-manager.inactive-num-limit": "1.5"}, "inactive-num-limit: must be an integer >= 0, not '1.5'"),
    ({"job-manager.inactive-age-limit": "-3s"}, "inactive-age-limit: invalid FSD '-3s'"),
    ({"job-manager.inactive-age-limit": ""}, "inactive-age-limit: invalid FSD ''"),
])
def test_bad_limits_name_the_attribute(attrs, message):
    with pytest.raises(ValueError, match=message):
        parse_limits(attrs)


def test_a_job_goes_when_either_limit_is_exceeded():
    assert not _eligible(10.0, AGE_UNLIMITED, 5, NUM_UNLIMITED)
    assert _eligible(10.0, 5.0, 1, NUM_UNLIMITED)  # older than the age limit
    assert not _eligible(5.0, 5.0, 1, NUM_UNLIMITED)  # exactly at it: kept, as in flux-core
    assert _eligible(0.0, AGE_UNLIMITED, 4, 3)  # more inactive jobs than the number limit
    assert not _eligible(0.0, AGE_UNLIMITED, 3, 3)
    assert _eligible(0.0, AGE_UNLIMITED, 1, 0)


@pytest.mark.parametrize("method, payload", [("purge", {"force": True, "num_limit": 0}),
                                             ("purge-id", {"id": 1, "force": True})])
def test_only_the_owner_may_purge(method, payload):
    """A guest's purge request (rolemask 2) is refused with EPERM and nothing goes
    (guests are refused at the connector too; this is the job manager's own check)."""
    import errno
    from types import SimpleNamespace

    from flux_launch.services.base import ServiceError
    from flux_launch.services.job_manager.purge import Purge

    job = SimpleNamespace(id=1, state="INACTIVE", t_inactive=1.0)
    jm = SimpleNamespace(jobs={1: job}, broker=SimpleNamespace(attrs={}))
    purge = Purge(jm)
    with pytest.raises(ServiceError) as exc:
        purge.methods()[method]({"rolemask": 2, "userid": 65534}, payload)
    assert exc.value.errnum == errno.EPERM and "only the instance owner" in exc.value.text
    assert jm.jobs == {1: job}
