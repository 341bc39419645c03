"""The one retry rule (errors.is_retryable) that the client and the scheduler share."""

from hiptah_blender.client import errors


def test_only_contract_statuses_are_retryable() -> None:
    for status in (429, 500, 502, 503, 504):
        assert errors.is_retryable(errors.error_for_status(status)(status=status)), status
    for status in (400, 401, 403, 404, 422, 501, 505):
        assert not errors.is_retryable(errors.error_for_status(status)(status=status)), status


def test_transport_errors_are_retryable_but_tls_and_deadline_are_not() -> None:
    assert errors.is_retryable(errors.APIConnectionError())
    assert errors.is_retryable(errors.APITimeoutError())
    assert not errors.is_retryable(errors.TLSError())
    assert not errors.is_retryable(errors.JobTimeoutError())
