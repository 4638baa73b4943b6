"""Email addresses: syntax check and the uniqueness key (pure, no I/O).

Decision: an address is stored as the user typed it (trimmed, NFC), and accounts are unique
on `email_key` = NFKC then `str.casefold()` of the whole address. NFKC folds compatibility
look-alikes (full-width letters, ligatures) and casefold folds case beyond ASCII ("ß" ->
"ss", "İ"), so visually identical addresses cannot become two accounts. The cost: two real
mailboxes that differ only that way (rare; RFC 5321 lets a host treat the local part as
case-sensitive, almost none do) cannot both register.

Mail always goes to the *stored* address of the account, never to the address typed into a
reset form: sending to the typed one after a case-folded match is how look-alike addresses
steal reset links (GitHub, 2019).
"""

from __future__ import annotations

import unicodedata

MAX_EMAIL_LEN = 254  # RFC 5321 4.5.3.1.3: a path is at most 256 octets including "<>"
MAX_LOCAL_LEN = 64  # RFC 5321 4.5.3.1.1


class InvalidEmail(ValueError):
    pass


def clean_email(raw: str) -> str:
    """The address as stored: trimmed and NFC-composed; raises InvalidEmail."""
    email = unicodedata.normalize("NFC", raw.strip())
    if not email or len(email) > MAX_EMAIL_LEN:
        raise InvalidEmail("email must be 1 to 254 characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co", "Cn") for c in email):
        raise InvalidEmail("email must not contain spaces or control characters")
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or len(local) > MAX_LOCAL_LEN:
        raise InvalidEmail("email must look like name@domain")
    if "@" in local and not (local.startswith('"') and local.endswith('"')):
        raise InvalidEmail("email must contain one @")
    if domain.startswith(".") or domain.endswith(".") or ".." in domain or "." not in domain.strip("."):
        if domain != "localhost":
            raise InvalidEmail("email domain is not valid")
    return email


def email_key(email: str) -> str:
    """The case- and compatibility-insensitive uniqueness key of an address."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())
