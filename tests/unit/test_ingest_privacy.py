"""PII is redacted and user ids are pseudonymised per tenant before anything is stored."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tacit.core.domain import ChatEvent
from tacit.core.privacy import (
    CARD, EMAIL, IBAN, IPV4, IPV6, PHONE, SECRET, Privacy, _card, _iban, _ip, _ipv6, _phone, redact,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at jane.doe+x@example.co.uk please", "mail me at [EMAIL] please"),
        ("card 4111 1111 1111 1111, exp 12/27", "card [CARD], exp 12/27"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("call +1 (415) 555-0132 or 030 1234567", "call [PHONE] or [PHONE]"),
        ("server 192.168.10.254 is down", "server [IP] is down"),
        ("v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 too", "v6 [IP] too"),
        ("v6 without digits dead:beef:cafe:babe:dead:beef:cafe:face", "v6 without digits [IP]"),
        ("the server is 10.1.2.3.", "the server is [IP]."),  # an address ending a sentence
        ("link-local fe80::1ff:fe23:4567:890a here", "link-local [IP] here"),
        ("ping 2001:db8::8a2e:370:7334 or 2001:db8:: now", "ping [IP] or [IP] now"),
        ("IBAN DE89 3704 0044 0532 0130 00, thanks", "IBAN [IBAN], thanks"),
        ("pay to GB82WEST12345698765432", "pay to [IBAN]"),
        ("key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", "key [SECRET]"),
        ("AWS AKIAIOSFODNN7EXAMPLE in the config", "AWS [SECRET] in the config"),
        ("token ghp_" + "a1B2c3D4e5" * 4 + " leaked", "token [SECRET] leaked"),
        ("slack xoxb-1234567890-0987654321-AbCdEfGhIjKl", "slack [SECRET]"),
        ("tacit tk_0123456789ab_" + "A" * 43 + ".", "tacit [SECRET]."),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         "jwt [SECRET]"),
    ],
)
def test_personal_data_is_replaced_by_a_tag(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "order 12345678901234567 shipped",  # 17 digits failing the Luhn check: no card, too long for a phone
    "version 3.11.4, in 2024, 42 items, 10.5%",
    "x = 1e-9 and 1.0.0.1.2",
    "start_date='2005-01-01' and end 2024-01-15T10:30:00",  # dates, in code or prose
    "pi is 3.14159265358979 and e 2.718281828459045",  # long decimals
    "app.run(host='0.0.0.0') or 127.0.0.1:8000",  # the unspecified and loopback addresses of code
    "ISBN 978-3-16-148410-0, and the id 1234567890123",  # an ISBN, a bare run of digits
    "sk-learn and scikit-learn, task-1234",  # words that only look like keys
    "at 10:30:45, std::vector and abc::def, ::1 is loopback",  # times, C++ names, the loopback address
    "code DE12 3456 7890 1234 5678 90 fails its check",  # shaped like an IBAN, mod 97 says no
])
def test_ordinary_numbers_are_kept(text):
    assert redact(text) == text


def event(**changes) -> ChatEvent:
    return ChatEvent(**{"tenant": "acme", "conversation_id": "c", "turn_index": 0, "role": "user",
                        "content": "I am bob@example.com", "user_id": "bob", **changes})


def _every_pattern_on_every_text(text: str) -> str:
    text = EMAIL.sub("[EMAIL]", SECRET.sub("[SECRET]", text))
    text = CARD.sub(_card, IBAN.sub(_iban, text))
    text = IPV6.sub(_ipv6, IPV4.sub(_ip, text))
    return PHONE.sub(_phone, text)


PII_PIECES = st.sampled_from(["sk-" + "a" * 24, "tk_", "eyJ", "a@b.io", "4111 1111 1111 1111", "10.0.0.1", "+1 415 555 0132", ":", "@", "7",
                              "dead:beef:cafe:babe:dead:beef:cafe:face", "fe80::1", "::", "DE89 3704 0044 0532 0130 00",
                              " ", "x", ".", "-"])


@given(st.lists(st.one_of(PII_PIECES, st.text(max_size=8)), max_size=12).map("".join))
def test_skipping_scans_that_cannot_match_changes_nothing(text):
    """``redact`` skips patterns whose required characters are absent; the result must be the same."""
    assert redact(text) == _every_pattern_on_every_text(text)


def test_user_ids_get_a_stable_pseudonym_that_differs_between_tenants():
    privacy = Privacy(redact_pii=True, user_id_secret=b"s3cret")
    first, again = privacy.apply(event()), privacy.apply(event(turn_index=1))
    other_tenant = privacy.apply(event(tenant="globex"))
    assert first.content == "I am [EMAIL]"
    assert first.user_id == again.user_id != "bob"
    assert other_tenant.user_id != first.user_id
    assert Privacy(redact_pii=True, user_id_secret=b"other").apply(event()).user_id != first.user_id


def test_metadata_strings_are_redacted_at_any_depth_and_other_values_kept():
    original = event().model_copy(update={"metadata": {
        "profile": {"email": "bob@example.com", "ids": ["tok sk-" + "a" * 24, 7]}, "bob@example.com": True}})
    redacted = Privacy(redact_pii=True, user_id_secret=None).apply(original).metadata
    assert redacted == {"profile": {"email": "[EMAIL]", "ids": ["tok [SECRET]", 7]}, "[EMAIL]": True}


def test_both_steps_can_be_switched_off():
    original = event()
    assert Privacy(redact_pii=False, user_id_secret=None).apply(original) == original
