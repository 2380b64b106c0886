"""The re-run hook's part of a workflow's settings form: shown with its secrets masked,
read back with each masked value that was left as shown replaced by the value stored."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from models.payloads import MASK, mask_url

from .models import RerunHook

FIELDS = ("rerun_url", "rerun_headers", "rerun_body", "rerun_secret")


@dataclass
class HookForm:
    """The form's four texts (as shown or typed), the `rerun` setting they make (None: no
    hook) and what is wrong that the setting's own checks cannot say, by setting name."""

    texts: dict[str, str]
    value: dict | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def shown(cls, hook: RerunHook | None) -> "HookForm":
        """The form for a stored hook: the URL by its scheme and host, header values and
        the secret as the mask, the body template pretty-printed."""
        if hook is None:
            return cls(dict.fromkeys(FIELDS, ""))
        return cls({"rerun_url": mask_url(hook.url),
                    "rerun_headers": "\n".join(f"{name}: {MASK}" for name in hook.headers),
                    "rerun_body": "" if hook.body is None else json.dumps(
                        hook.body, indent=2, ensure_ascii=False),
                    "rerun_secret": MASK if hook.secret else ""})

    @classmethod
    def read(cls, form, hook: RerunHook | None) -> "HookForm | None":
        """The hook a posted form asks for; None when the form has no re-run fields."""
        if "rerun_url" not in form:
            return None
        texts = {name: form.get(name, "") for name in FIELDS}
        read = cls(texts)
        url = texts["rerun_url"].strip()
        if not url:
            return read  # no URL: no hook
        stored = hook.headers if hook else {}
        value: dict = {"url": hook.url if hook and url == mask_url(hook.url) else url,
                       "headers": {}}
        for line in texts["rerun_headers"].splitlines():
            if not line.strip():
                continue
            name, colon, text = line.partition(":")
            name, text = name.strip(), text.strip()
            if not colon:
                read.errors["rerun.headers"] = f"{line.strip()!r}: write each header as Name: value"
                continue
            value["headers"][name] = stored[name] if text == MASK and name in stored else text
        if texts["rerun_body"].strip():
            try:
                value["body"] = json.loads(texts["rerun_body"])
            except ValueError as exc:
                read.errors["rerun.body"] = f"is not JSON ({exc})"
        secret = texts["rerun_secret"].strip()
        if secret:
            value["secret"] = hook.secret if hook and hook.secret and secret == MASK else secret
        shown = (("url", value["url"]), ("headers", " ".join(value["headers"].values())),
                 ("secret", value.get("secret", "")))
        for name, text in shown:
            if MASK in text:  # a mask with no stored value behind it
                read.errors[f"rerun.{name}"] = f"holds {MASK}: type the whole value"
        read.value = value
        return read
