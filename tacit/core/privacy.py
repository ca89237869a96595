"""What the worker does to personal data before anything is labeled or stored.

Message texts lose e-mail addresses, payment card numbers, IP addresses and phone numbers (each replaced by
a tag such as ``[EMAIL]``, so a labeler still sees that something was there). User ids become an HMAC whose
key is derived from a secret and the tenant: the same user keeps the same pseudonym within a tenant (the
trainer splits by user), two tenants never share one, and without the secret a pseudonym can't be reversed
by hashing guessed ids. Both steps are deterministic, so a redelivered event is rewritten identically and
still hits the same unique keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from tacit.core.domain import ChatEvent

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])")
DIGIT = re.compile(r"\d")
PHONE = re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?!\w)")


def _luhn(digits: str) -> bool:
    """Card numbers carry a Luhn check digit; long numbers that fail it (order ids, ...) are left alone."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    return "[CARD]" if _luhn(re.sub(r"\D", "", match.group())) else match.group()


def _phone(match: re.Match[str]) -> str:
    return "[PHONE]" if 7 <= len(re.sub(r"\D", "", match.group())) <= 15 else match.group()  # E.164


def redact(text: str) -> str:
    """Cards before phones: both are runs of digits, and a card number is the more specific match.

    Every pattern needs an ``@``, a digit or (IPv6, which may have no digit: ``fe80:...:cafe``) a colon, and
    most chat messages have none of them: checking first skips the regex scans that were the larger part of
    the worker's per-message cost. The order of the substitutions is the same either way.
    """
    if "@" in text:
        text = EMAIL.sub("[EMAIL]", text)
    digits = DIGIT.search(text) is not None
    if digits:
        text = IPV4.sub("[IP]", CARD.sub(_card, text))
    if ":" in text:
        text = IPV6.sub("[IP]", text)
    return PHONE.sub(_phone, text) if digits else text


@dataclass(frozen=True)
class Privacy:
    """The worker's privacy policy (``TACIT_REDACT_PII``, ``TACIT_USER_ID_SECRET``)."""

    redact_pii: bool
    user_id_secret: bytes | None

    def pseudonym(self, tenant: str, user_id: str) -> str:
        salt = hmac.new(self.user_id_secret or b"", tenant.encode(), hashlib.sha256).digest()
        return hmac.new(salt, user_id.encode(), hashlib.sha256).hexdigest()[:32]

    def apply(self, event: ChatEvent) -> ChatEvent:
        changes = {}
        if self.redact_pii:
            changes["content"] = redact(event.content)
        if self.user_id_secret is not None and event.user_id is not None:
            changes["user_id"] = self.pseudonym(event.tenant, event.user_id)
        return event.model_copy(update=changes) if changes else event
