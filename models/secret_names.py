"""Which names label a secret: object keys, the name of a name/value or header pair, a
`--flag`, the key of `key=value` in text (models.payloads masks the values under them)."""
from __future__ import annotations

import functools
import re

# --- Secret names ---------------------------------------------------------------------------
# One rule for every name that may label a secret: an object key, the `name` of a
# name/value pair or header pair, a `--flag`, the key of `key=value` in text. The name is
# read as words (split at anything but letters and digits, and at camelCase humps), and
# is secret when a word names a secret — is one of SECRET_WORDS, ends in one of
# SECRET_ENDINGS (`dbpassword`, `githubtoken`, `setcookie`), or is `key` after one of
# KEY_KINDS (`api_key`, `ssh_key`, `AWS_SECRET_ACCESS_KEY`) — unless a word after the last
# such word says the value is about the secret rather than the secret (ABOUT_WORDS:
# `token_count`, `password_hint`, `token_url`, `ssh_key_path`), or the word is `token(s)`
# counted by the word before it (`max_tokens`, `prompt_tokens`). Whole words only:
# `author`, `keyboard`, `monkey`, `passwordless` and `sessions_total` are not secret.
SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "passphrase", "passphrases", "passcode", "pwd", "pass",
    "secret", "secrets", "token", "tokens", "cookie", "cookies", "credential", "credentials",
    "creds", "authorization", "auth", "bearer", "jwt", "otp", "totp", "hotp", "pin",
    "session", "sessionid", "sig"})
SECRET_ENDINGS = ("password", "passwords", "passwd", "passphrase", "secret", "secrets", "token",
                  "tokens", "apikey", "apikeys", "privatekey", "secretkey", "accesskey",
                  "signingkey", "sshkey", "credential", "credentials", "cookie", "cookies",
                  "sessionid")
KEY_KINDS = frozenset({"api", "private", "access", "secret", "signing", "ssh", "encryption",
                       "master", "routing", "license", "deploy", "integration", "hmac",
                       "client", "app"})
ABOUT_WORDS = frozenset({
    "count", "counts", "total", "used", "remaining", "limit", "limits", "max", "min", "per",
    "rate", "type", "types", "length", "len", "size", "strength", "policy", "hint", "hints",
    "expiry", "expires", "expiration", "expired", "ttl", "lifetime", "age", "timeout",
    "duration", "seconds", "minutes", "hours", "days", "at", "time", "date", "url", "uri",
    "urls", "endpoint", "path", "file", "filename", "dir", "stdin", "env", "name", "names",
    "enabled", "required", "method", "methods", "mode", "provider", "scheme", "kind",
    "format", "version"})
TOKEN_COUNTS = frozenset({"max", "min", "num", "n", "total", "prompt", "completion", "input",
                          "output", "cached", "reasoning", "remaining", "used"})
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)  # payloads repeat the same keys thousands of times
def is_secret_key(key: str) -> bool:
    """Whether values under this name (object key, pair name, flag, header) are hidden."""
    words = [word.lower() for word in _WORD.findall(key)]
    last = -1
    for index, word in enumerate(words):
        if (word in SECRET_WORDS or word.endswith(SECRET_ENDINGS)
                or (word in ("key", "keys") and index and words[index - 1] in KEY_KINDS)):
            last = index
    if last < 0 or any(word in ABOUT_WORDS for word in words[last + 1:]):
        return False
    return not (words[last] in ("token", "tokens") and last
                and words[last - 1] in TOKEN_COUNTS)
