"""`sso.totp` against the test vectors of RFC 6238 (Appendix B) and RFC 4226 (Appendix D),
and the edges of what `verify` accepts: one step either side, never a step already used."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from sso import totp

# RFC 6238 Appendix B: the seeds are ASCII digits, 20, 32 and 64 bytes long.
SHA1_SEED = b"12345678901234567890"
SHA256_SEED = b"12345678901234567890123456789012"
SHA512_SEED = b"1234567890123456789012345678901234567890123456789012345678901234"
SEEDS = {"sha1": SHA1_SEED, "sha256": SHA256_SEED, "sha512": SHA512_SEED}

RFC6238 = [
    (59, 0x1, "94287082", "46119246", "90693936"),
    (1111111109, 0x23523EC, "07081804", "68084774", "25091201"),
    (1111111111, 0x23523ED, "14050471", "67062674", "99943326"),
    (1234567890, 0x273EF07, "89005924", "91819424", "93441116"),
    (2000000000, 0x3F940AA, "69279037", "90698825", "38618901"),
    (20000000000, 0x27BC86AA, "65353130", "77737706", "47863826"),
]
RFC4226 = ["755224", "287082", "359152", "969429", "338314",
           "254676", "287922", "162583", "399871", "520489"]  # fmt: skip


@pytest.mark.parametrize(("unix_time", "step", "sha1", "sha256", "sha512"), RFC6238)
def test_rfc6238_appendix_b(unix_time: int, step: int, sha1: str, sha256: str, sha512: str) -> None:
    assert totp.time_step(unix_time) == step
    for algorithm, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        code = totp.code_at(SEEDS[algorithm], unix_time, digits=8, algorithm=algorithm)
        assert code == expected, algorithm


def test_rfc4226_appendix_d() -> None:
    assert [totp.hotp(SHA1_SEED, counter) for counter in range(10)] == RFC4226


def _secret() -> str:
    # The RFC's SHA-1 seed as the base32 secret an app would be given.
    return "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def test_the_base32_secret_is_the_rfc_seed() -> None:
    assert totp.secret_key(_secret()) == SHA1_SEED
    assert totp.secret_key("gezd gnbv gy3t qojq gezd gnbv gy3t qojq") == SHA1_SEED
    with pytest.raises(totp.TotpSecretError):
        totp.secret_key("not base32!")


def test_six_digit_codes_are_the_low_digits_of_the_eight() -> None:
    # Dynamic truncation modulo 10^6 instead of 10^8: the last six digits.
    assert totp.code_at(SHA1_SEED, 59) == "287082"
    assert totp.verify(_secret(), "287082", 59, None) == 1


T = 1111111109  # inside step 0x23523EC
STEP = 0x23523EC


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-2, False), (-1, True), (0, True), (1, True), (2, False)],
)
def test_one_step_either_side_is_accepted(offset: int, accepted: bool) -> None:
    code = totp.hotp(SHA1_SEED, STEP + offset)
    assert (totp.verify(_secret(), code, T, None) == STEP + offset) is accepted


def test_window_edges_at_the_first_and_last_second_of_a_step() -> None:
    start = STEP * totp.STEP_SECONDS  # the first second of STEP
    previous = totp.hotp(SHA1_SEED, STEP - 1)
    before_previous = totp.hotp(SHA1_SEED, STEP - 2)
    # At the first second of STEP, STEP-1 is still accepted, STEP-2 no longer.
    assert totp.verify(_secret(), previous, start, None) == STEP - 1
    assert totp.verify(_secret(), before_previous, start, None) is None
    # At the last second of STEP-1, STEP-2 is still accepted and STEP+1 not yet.
    assert totp.verify(_secret(), before_previous, start - 1, None) == STEP - 2
    assert totp.verify(_secret(), totp.hotp(SHA1_SEED, STEP + 1), start - 1, None) is None
    assert totp.verify(_secret(), totp.hotp(SHA1_SEED, STEP), start - 1, None) == STEP


def test_a_code_of_a_step_already_used_is_refused() -> None:
    code = totp.hotp(SHA1_SEED, STEP)
    assert totp.verify(_secret(), code, T, None) == STEP
    assert totp.verify(_secret(), code, T, STEP) is None  # replayed
    assert totp.verify(_secret(), totp.hotp(SHA1_SEED, STEP - 1), T, STEP) is None  # older
    assert totp.verify(_secret(), totp.hotp(SHA1_SEED, STEP + 1), T, STEP) == STEP + 1


@pytest.mark.parametrize(
    "code",
    [
        "",
        "12345",
        "1234567",
        "abcdef",
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
        "-12345",
    ],
)
def test_malformed_codes_are_refused(code: str) -> None:
    assert totp.verify(_secret(), code, T, None) is None


def test_spaces_in_a_code_are_ignored() -> None:
    code = totp.hotp(SHA1_SEED, STEP)
    assert totp.verify(_secret(), f"{code[:3]} {code[3:]}", T, None) == STEP


def test_new_secrets_are_random_160_bit_base32() -> None:
    secrets = {totp.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert len(totp.secret_key(secret)) == 20 and "=" not in secret


def test_the_provisioning_uri() -> None:
    uri = totp.provisioning_uri(_secret(), "jane@corp.example", "Acme Corp")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Acme Corp:jane@corp.example"
    assert parse_qs(parts.query) == {
        "secret": [_secret()],
        "issuer": ["Acme Corp"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }
