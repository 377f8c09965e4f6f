"""The staff console: server-rendered pages that call the three services with the signed-in
person's token; it keeps no business data of its own."""

import warnings

from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

# Authlib 1.9 warns, whenever the console starts, that it would rather use httpx2; it uses this
# project's httpx meanwhile (console.oidc). Its own "always" filter is in place once it is
# imported, so this one, added after, is the one that applies.
warnings.filterwarnings(
    "ignore", message="The httpx module is deprecated", category=AuthlibDeprecationWarning
)
